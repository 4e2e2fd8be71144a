"""Runtimes decide where replicas run: in this process (local) or, later, in Ray actors."""

from strata.runtime.base import Replica, Runtime
from strata.runtime.local import LocalRuntime

__all__ = ["LocalRuntime", "Replica", "Runtime"]
