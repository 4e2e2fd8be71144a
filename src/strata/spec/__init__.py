"""The app spec: pydantic models and the YAML loader."""

from strata.spec.loader import load_spec, parse_spec
from strata.spec.models import (
    AppSpec,
    BatchingSpec,
    DeploymentSpec,
    GatewaySpec,
    ModelSpec,
    ResourcesSpec,
    RouteSpec,
    StoreSpec,
    TargetsSpec,
)

__all__ = [
    "AppSpec",
    "BatchingSpec",
    "DeploymentSpec",
    "GatewaySpec",
    "ModelSpec",
    "ResourcesSpec",
    "RouteSpec",
    "StoreSpec",
    "TargetsSpec",
    "load_spec",
    "parse_spec",
]
