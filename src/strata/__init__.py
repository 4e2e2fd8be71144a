"""Strata: a serving platform for generative AI.

The public surface is re-exported here; everything else is free to move.
"""

from strata.apps import default_app
from strata.errors import (
    InvalidRequest,
    ModelFailed,
    ModelNotFound,
    NotReady,
    Overloaded,
    RequestTooLarge,
    SpecError,
    StrataError,
)
from strata.gateway.app import create_app
from strata.models.base import BatchModel, DecodeEngine, Embedding
from strata.serving.server import ModelServer
from strata.spec import (
    AppSpec,
    BatchingSpec,
    DeploymentSpec,
    GatewaySpec,
    ModelSpec,
    ResourcesSpec,
    RouteSpec,
    TargetsSpec,
    load_spec,
    parse_spec,
)

__version__ = "0.1.0"

__all__ = [
    "AppSpec",
    "BatchModel",
    "BatchingSpec",
    "DecodeEngine",
    "DeploymentSpec",
    "Embedding",
    "GatewaySpec",
    "InvalidRequest",
    "ModelFailed",
    "ModelNotFound",
    "ModelServer",
    "ModelSpec",
    "NotReady",
    "Overloaded",
    "RequestTooLarge",
    "ResourcesSpec",
    "RouteSpec",
    "SpecError",
    "StrataError",
    "TargetsSpec",
    "__version__",
    "create_app",
    "default_app",
    "load_spec",
    "parse_spec",
]
