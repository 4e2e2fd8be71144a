"""Resilience and traffic knobs of the app spec: versions, rollouts, breakers, retries, admission, health.

Every default keeps an existing spec behaving as before: one version at weight 100, no deployment
concurrency limit, retries only on another replica and only when it is safe.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSpec(_Spec):
    consecutive_failures: int = Field(
        default=5, ge=1, description="Failures (errors or try timeouts) in a row that open the breaker."
    )
    open_s: float = Field(default=5.0, gt=0, description="How long an open breaker rejects before a half-open probe.")
    max_open_s: float = Field(
        default=60.0, gt=0, description="Cap on the open time, which doubles each time a probe fails."
    )


class OutlierSpec(_Spec):
    slow_ratio: float = Field(
        default=4.0,
        gt=1,
        description="A replica whose latency average is this many times its peers' median is ejected as slow.",
    )
    min_samples: int = Field(default=3, ge=1, description="Requests a replica must have served before it is judged.")
    min_gap_ms: float = Field(
        default=10.0,
        ge=0,
        description="Nor unless it is also this much slower: jitter on a fast model is not slowness.",
    )
    max_ejected_share: float = Field(
        default=0.5, ge=0, le=1, description="Never eject more than this share of a deployment's replicas."
    )


class RetrySpec(_Spec):
    max_attempts: int = Field(default=3, ge=1, le=10, description="Tries per request, the first one included.")
    try_timeout_ms: float | None = Field(
        default=None, gt=0, description="Longest one try may take before it counts as failed and is retried."
    )
    budget_ratio: float = Field(
        default=0.2, ge=0, le=1, description="Retries may be at most this share of requests (over a 10 s window)."
    )
    min_retries_per_s: float = Field(
        default=5.0, ge=0, description="Retries always allowed per second, so a quiet deployment can still retry."
    )


class AdmissionSpec(_Spec):
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Requests inside the deployment at once; None: no deployment limit (replica queues only).",
    )
    max_waiting: int = Field(
        default=64, ge=0, description="Requests waiting for a concurrency slot; beyond it: 503 + Retry-After at once."
    )
    max_wait_ms: float | None = Field(
        default=None, gt=0, description="Longest a request waits for a slot before it is shed with 503."
    )
    adaptive: bool = Field(
        default=False, description="Adapt the limit (AIMD) between min_concurrency and max_concurrency by latency."
    )
    min_concurrency: int = Field(default=1, ge=1, description="Floor of the adaptive limit.")
    slo: bool = Field(
        default=True,
        description="With targets.latency_p99_ms declared: shed a request at once (503 + Retry-After from the "
        "drain rate) when its predicted latency - time to first token for a stream - would pass the target, "
        "instead of queuing it. Without max_concurrency the limit is then automatic: 2 x max_batch_size per "
        "replica (max_batch_size per replica for text generation).",
    )
    slo_headroom: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Share of the latency target a predicted latency may use: the prediction is an average and "
        "the target a 99th percentile, so admitting up to the whole target would let the tail pass it.",
    )
    tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weighted fair queuing between tenants waiting for a slot: tenant -> weight (unlisted: 1). "
        "A tenant flooding the deployment waits behind its own requests, not in front of everyone else's.",
    )

    @model_validator(mode="after")
    def _adaptive_needs_a_ceiling(self) -> AdmissionSpec:
        if self.adaptive and self.max_concurrency is None:
            raise ValueError("adaptive admission needs max_concurrency (the ceiling of the limit)")
        bad = sorted(tenant for tenant, weight in self.tenant_weights.items() if not 0 < weight <= 1000)
        if bad:
            raise ValueError(f"tenant_weights: weights must lie in (0, 1000]; check {bad}")
        return self


class HealthSpec(_Spec):
    check_interval_ms: float = Field(default=100.0, gt=0, description="How often replicas' liveness is checked.")
    stall_timeout_s: float = Field(
        default=30.0, gt=0, description="A replica holding work that makes no progress this long is restarted."
    )
    restart: bool = Field(default=True, description="Restart a replica whose worker died or stalled.")


class VersionSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN, description="Version name, sent back in the x-strata-version header.")
    deployment: str = Field(description="Deployment serving this version.")
    weight: float = Field(default=0.0, ge=0, le=100, description="Share of the route's traffic, in percent.")


class RolloutSpec(_Spec):
    steps: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        min_length=1,
        description="Canary weights, in percent, a progressive rollout goes through.",
    )
    window_s: float = Field(default=30.0, gt=0, description="Analysis window: how long each step is watched.")
    min_requests: int = Field(default=20, ge=1, description="Canary requests needed before it is judged.")
    max_error_rate_increase: float = Field(
        default=0.05, ge=0, le=1, description="Roll back when the canary's error rate exceeds stable's by more."
    )
    max_p99_ratio: float = Field(default=1.5, gt=1, description="Roll back when canary p99 exceeds stable p99 x this.")
    p99_slack_ms: float = Field(default=20.0, ge=0, description="p99 differences below this are never a regression.")
    auto_promote: bool = Field(default=True, description="Advance to the next step when a window passes healthy.")

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_100(cls, steps: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] <= 0:
            raise ValueError("steps must rise strictly, from above 0")
        if steps[-1] != 100:
            raise ValueError("steps must end at 100")
        return steps


StickyBy = Literal["none", "user", "session"]
"""none: each request drawn by weight; user: the request's `user` field; session: the x-strata-session header."""
