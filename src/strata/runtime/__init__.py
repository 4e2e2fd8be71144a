"""Runtimes decide where replicas run: in this process (local) or in Ray actors across a cluster.
They implement the ``Replica`` and ``Runtime`` protocols that serving declares (``strata.serving.runtime``,
re-exported here).

Names load on first use: the Ray controller imports ``strata.runtime.ray_controller``, and must not
pay for the local runtime's model backends (torch, transformers) each time it (re)starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.runtime.local import LocalRuntime
    from strata.serving.runtime import Replica, Runtime
    from strata.spec import AppSpec

__all__ = ["LocalRuntime", "Replica", "Runtime", "runtime_for"]

_LAZY = {
    "LocalRuntime": "strata.runtime.local",
    "Replica": "strata.serving.runtime",  # declared by serving, which consumes them
    "Runtime": "strata.serving.runtime",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'strata.runtime' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name]), name)


def runtime_for(spec: AppSpec) -> Runtime:
    """The runtime the spec asks for. Ray is imported only here: the local runtime never needs it."""
    if spec.runtime == "ray":
        from strata.runtime.ray_runtime import RayRuntime

        return RayRuntime(spec)
    from strata.runtime.local import LocalRuntime

    return LocalRuntime()
