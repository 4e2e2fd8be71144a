"""Helpers for testing Strata and apps built on it: a real server process on loopback."""

from strata.testing.metrics import MetricSamples
from strata.testing.server import ServerProcess, free_port, predict_round_robin

__all__ = ["MetricSamples", "ServerProcess", "free_port", "predict_round_robin"]
