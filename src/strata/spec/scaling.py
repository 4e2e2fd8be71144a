"""Distributed-mode knobs of the app spec: where a Ray runtime connects, and how a deployment's
replica count follows its load (the autoscaler's settings).

The defaults keep an existing spec as it was: the local runtime, and a fixed replica count
(no ``autoscaling`` section means ``replicas`` replicas, always).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySpec(_Spec):
    address: str = Field(
        default="auto",
        description="Ray cluster to join: 'auto' (the cluster this node belongs to), 'local' (start one in this "
        "process, for trying it out), or 'ray://HOST:10001' (Ray Client). STRATA_RAY_ADDRESS overrides it.",
    )
    namespace: str = Field(
        default="strata",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Ray namespace of the app's controller and replica actors; gateways of one app share it.",
    )
    sync_interval_ms: float = Field(
        default=200.0,
        ge=10,
        le=10_000,
        description="How often each gateway asks the controller for the replica set (new, draining, gone).",
    )
    replica_metrics_port: int | None = Field(
        default=0,
        ge=0,
        le=65535,
        description="Each replica serves its own Prometheus metrics (batch sizes, queue waits, stage latencies, "
        "tokens) on this port (see replica_metrics_host); 0 picks a free one, None turns it off. Gateways list the "
        "endpoints for Prometheus HTTP service discovery at GET /v1/admin/cluster/targets.",
    )
    replica_metrics_host: Literal["loopback", "node"] = Field(
        default="loopback",
        description="Where replica metrics listen: 'loopback' (127.0.0.1: only an agent on the same node can "
        "scrape them) or 'node' (the node's IP, reachable by other machines; needs replica_metrics_token_env).",
    )
    replica_metrics_token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable, set on every Ray node, holding the bearer token each scrape of a "
        "replica's metrics must send. Required with replica_metrics_host 'node'.",
    )
    control_interval_ms: float = Field(
        default=500.0,
        ge=50,
        le=60_000,
        description="How often the controller reconciles replicas and runs the autoscaler.",
    )

    @model_validator(mode="after")
    def _public_metrics_need_a_token(self) -> RaySpec:
        if self.replica_metrics_host == "node" and self.replica_metrics_token_env is None:
            raise ValueError(
                "replica_metrics_host: 'node' serves replica metrics to the whole network; name the variable "
                "holding their bearer token in replica_metrics_token_env, or keep 'loopback'"
            )
        return self


class AutoscalingSpec(_Spec):
    min_replicas: int = Field(
        default=1, ge=0, le=256, description="Fewest replicas; 0 lets an idle deployment scale to zero."
    )
    max_replicas: int = Field(default=4, ge=1, le=256, description="Most replicas the autoscaler starts.")
    target_in_flight: float = Field(
        default=8.0,
        gt=0,
        description="Requests in progress (queued at a replica or in its batch) one replica should carry on average.",
    )
    target_queue: float = Field(
        default=16.0,
        gt=0,
        description="Requests waiting (at replicas, or held by gateways during a cold start) per replica before "
        "the backlog alone asks for more replicas.",
    )
    upscale_cooldown_s: float = Field(
        default=5.0, ge=0, description="Least time between two scale-ups (lets new replicas take load first)."
    )
    downscale_cooldown_s: float = Field(
        default=30.0, ge=0, description="Least time after any change before a scale-down."
    )
    downscale_hysteresis: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Scale down only when the load would fit in this share fewer replicas (no flapping at the edge).",
    )
    downscale_max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Most of the replicas one scale-down removes, as a share of the current count (always at least "
        "one): a lull in a bursty load does not drop the deployment to its floor in one step.",
    )
    downscale_stabilization_s: float = Field(
        default=120.0,
        ge=0,
        description="Scale-down stops at what the highest arrival rate of this many recent seconds needs, so bursts "
        "that recur within it find their replicas still there; 0 turns it off.",
    )
    in_flight_window_s: float = Field(
        default=10.0,
        gt=0,
        description="The in-flight term averages the samples of this many seconds, so one busy instant does not start "
        "a replica (the backlog and latency terms still react within one control interval).",
    )
    scale_to_zero_after_s: float = Field(
        default=300.0, gt=0, description="With min_replicas 0: idle this long (no requests) before the last one goes."
    )
    cold_start_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a request to a deployment scaled to zero is held while a replica starts; then 503.",
    )
    forecast_window_s: float = Field(
        default=30.0,
        gt=0,
        description="Arrival-rate history the predictive term fits its trend to; it scales up ahead of a ramp.",
    )
    forecast_horizon_s: float = Field(
        default=10.0,
        ge=0,
        description="How far ahead the predictive term looks (about a replica's cold start); 0 turns it off.",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A replica being removed gets no new requests and this long to finish those it holds.",
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self
