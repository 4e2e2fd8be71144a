"""The app spec: pydantic models and the YAML loader."""

from strata.spec.guardrails import GuardBindingSpec, GuardrailsSpec, GuardSpec, ModelGuardSpec
from strata.spec.loader import load_spec, parse_spec
from strata.spec.models import (
    AccessSpec,
    AppSpec,
    BatchingSpec,
    BudgetSpec,
    DeploymentSpec,
    GatewaySpec,
    JWTSpec,
    ModelSpec,
    PriceSpec,
    RateLimitSpec,
    ResourcesSpec,
    RouteSpec,
    StoreSpec,
    TargetsSpec,
)
from strata.spec.pipelines import PipelineSpec, StepSpec, WorkflowsSpec

__all__ = [
    "AccessSpec",
    "AppSpec",
    "BatchingSpec",
    "BudgetSpec",
    "DeploymentSpec",
    "GatewaySpec",
    "GuardBindingSpec",
    "GuardSpec",
    "GuardrailsSpec",
    "JWTSpec",
    "ModelGuardSpec",
    "ModelSpec",
    "PipelineSpec",
    "PriceSpec",
    "RateLimitSpec",
    "ResourcesSpec",
    "RouteSpec",
    "StepSpec",
    "StoreSpec",
    "TargetsSpec",
    "WorkflowsSpec",
    "load_spec",
    "parse_spec",
]
