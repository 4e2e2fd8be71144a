"""Strata: a serving platform for generative AI.

The public surface is re-exported here; everything else is free to move. The heavy parts (the
spec's models, the gateway, the model backends with torch) load on first use, so ``import
strata.<light module>`` - as every Ray worker, the controller and the audit writer process do -
does not pay for them.
"""

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from strata.apps import default_app
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

_SPEC = ("AppSpec", "BatchingSpec", "DeploymentSpec", "GatewaySpec", "ModelSpec", "ResourcesSpec", "RouteSpec",
         "TargetsSpec", "load_spec", "parse_spec")  # fmt: skip
_LAZY = {
    **dict.fromkeys(_SPEC, "strata.spec"),  # the spec's models too: the audit writer process never needs them
    "default_app": "strata.apps",
    "create_app": "strata.gateway.app",
    "BatchModel": "strata.models.base",
    "DecodeEngine": "strata.models.base",
    "Embedding": "strata.models.base",
    "ModelServer": "strata.serving.server",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'strata' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name]), name)


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
