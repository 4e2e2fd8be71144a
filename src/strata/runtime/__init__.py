"""Runtimes decide where replicas run: in this process (local) or in Ray actors across a cluster."""

from strata.runtime.base import Replica, Runtime
from strata.runtime.local import LocalRuntime
from strata.spec import AppSpec

__all__ = ["LocalRuntime", "Replica", "Runtime", "runtime_for"]


def runtime_for(spec: AppSpec) -> Runtime:
    """The runtime the spec asks for. Ray is imported only here: the local runtime never needs it."""
    if spec.runtime == "ray":
        from strata.runtime.ray_runtime import RayRuntime

        return RayRuntime(spec)
    return LocalRuntime()
