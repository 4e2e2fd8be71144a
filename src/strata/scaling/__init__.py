"""Autoscaling: the policy that turns a deployment's load into a replica count, and a simulation to judge it."""

from strata.scaling.policy import LoadSample, ScalingDecision, ScalingPolicy, StrataAutoscaler, ThresholdAutoscaler

__all__ = ["LoadSample", "ScalingDecision", "ScalingPolicy", "StrataAutoscaler", "ThresholdAutoscaler"]
