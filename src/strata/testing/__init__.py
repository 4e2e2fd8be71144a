"""Helpers for testing Strata and apps built on it: a real server process on loopback."""

from strata.testing.server import ServerProcess, free_port

__all__ = ["ServerProcess", "free_port"]
