"""Autoscaling policies: from one load sample of a deployment to the replica count it should have.

The controller calls ``decide`` once per control interval per deployment and applies the answer
(start replicas, or drain and remove them). A policy is pure logic: all time comes from
``LoadSample.now_s``, so a simulation or a test drives it with any clock. It may keep state
(when it last scaled, recent samples) and assumes each decision it returns is applied.

``StrataAutoscaler`` asks four terms how many replicas they want and takes the largest:

- **in_flight**: requests in progress averaged over ``in_flight_window_s``, divided by
  ``target_in_flight``. This is the steady-state sizing (as Knative's concurrency target): it is
  averaged because one sample of a Poisson load is noisy, and a count sized on single samples
  climbs on every flicker and then flaps back down.
- **backlog**: requests waiting now divided by ``target_queue``, not averaged. A queue is the
  first sign of a burst, and it includes requests that gateways hold while a deployment scaled to
  zero starts (those are in no replica's in-flight count).
- **latency**: the SLO feedback. With p99 over the target the ready replicas are multiplied by
  p99 / target (capped at 2: near saturation latency grows far faster than load, so the raw ratio
  would overshoot; doubling per upscale cooldown still reaches any size in a few steps). With p99
  within ``downscale_hysteresis`` of the target the term holds the current count (removing
  capacity there would likely break the SLO); well under it, or with no p99 (nothing finished),
  the term asks for nothing.
- **forecast**: the arrival rate ``forecast_horizon_s`` ahead, from a least-squares line over the
  last ``forecast_window_s`` (``strata.scaling.forecast``), turned into in-flight requests with
  Little's law (L = rate x W, where W = requests in a batch / arrival rate is the seconds a request
  spends in service; the queue is left out of W because it has its own term and would inflate W
  by its wait), then into replicas like the in-flight term. A replica started now is ready after
  a cold start, so on a ramp this term starts it one horizon early.

Then the guards, in order: from zero any demand starts replicas at once ("cold_start", no
cooldown: a held request is waiting); an idle deployment with ``min_replicas`` 0 goes to zero
after ``scale_to_zero_after_s`` ("scale_to_zero"); a count outside min..max is put back
("bounds"). Scale-up is fast: only ``upscale_cooldown_s`` since the last scale-up, which gives the
replicas just started time to take load before more are asked for. Scale-down is slow and
guarded four ways: ``downscale_cooldown_s`` since any change; hysteresis (each load term is
divided by 1 - ``downscale_hysteresis``, so n replicas are kept until the load fits in that share
fewer, and a load at the edge does not flap); a step of at most ``downscale_max_share`` of the
replicas per decision ("step"), so a lull does not drop to the floor in one go; and a **peak** hold:
never below what the highest arrival rate of the last ``downscale_stabilization_s`` needs (that
rate x W / ``target_in_flight``, as the forecast). Bursts recur: in the bursty simulation, without
the hold the policy was at its floor when the next burst came and lost to the threshold baseline
on SLO violations (a cold start is longer than many bursts); with it, it has about half of them.

``ThresholdAutoscaler`` is the baseline to compare against: +1 replica when in-flight per replica
is above the target, -1 when below half of it, one cooldown per direction, nothing else.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from strata.scaling.forecast import projected_rate
from strata.spec.scaling import AutoscalingSpec

# Latency over target multiplies the ready replicas by p99/target, at most by this much per decision.
MAX_LATENCY_FACTOR = 2.0
# ceil() of a float product such as 3 x (8/3) can land on 8.000000001; needs within this of an integer count as it.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class LoadSample:
    """What the controller measured for one deployment over the last control interval."""

    now_s: float  # monotonic seconds (the policy never reads a clock itself: pure)
    replicas: int  # replicas the deployment has now: starting + ready (not draining ones)
    ready_replicas: int  # of which loaded and taking traffic
    in_flight: float  # requests in progress over all replicas (queued at a replica + in its batch)
    queued: float  # requests waiting: in replica queues + held by gateways during a cold start
    p99_latency_s: float | None  # over the last control interval; None when no request finished in it
    arrivals_per_s: float  # request arrival rate over the last control interval
    idle_s: float  # seconds since the last request arrived (for scale to zero)


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    desired: int  # replicas wanted now (already clamped to min..max, cooldowns applied)
    current: int  # sample.replicas
    reason: str  # one short word: "steady", "in_flight", "backlog", "latency", "forecast", "cold_start", ...
    terms: dict[str, float]  # replicas each term asked for, for the decision log and metrics


class ScalingPolicy(Protocol):
    def decide(self, sample: LoadSample) -> ScalingDecision: ...


def _replicas_for(need: float) -> int:
    """Whole replicas that cover a fractional need."""
    return max(0, math.ceil(need - _EPSILON))


def _has_demand(sample: LoadSample) -> bool:
    return sample.queued > 0 or sample.arrivals_per_s > 0 or sample.in_flight > 0


def _idle_long_enough(spec: AutoscalingSpec, sample: LoadSample) -> bool:
    return (
        spec.min_replicas == 0
        and sample.idle_s >= spec.scale_to_zero_after_s
        and sample.in_flight <= 0
        and sample.queued <= 0
    )


@dataclass(frozen=True, slots=True)
class _Needs:
    """Fractional replicas each load term asks for; latency is whole (it scales a count of replicas)."""

    in_flight: float
    backlog: float
    forecast: float
    latency: int
    latency_holds: bool  # p99 is near the target: keep the count
    peak: float  # what the highest recent arrival rate needs: scale-down stops there

    def upscale(self) -> tuple[int, str]:
        """The most replicas any term wants, and which term it is (the first named wins a tie)."""
        wants = {
            "in_flight": _replicas_for(self.in_flight),
            "backlog": _replicas_for(self.backlog),
            "latency": self.latency,
            "forecast": _replicas_for(self.forecast),
        }
        reason = max(wants, key=lambda name: wants[name])
        return wants[reason], reason

    def downscale(self, hysteresis: float, current: int) -> int:
        """Fewest replicas the load fits in with ``hysteresis`` to spare; latency near target holds ``current``."""
        spare = 1.0 - hysteresis
        load = max(self.in_flight, self.backlog, self.forecast) / spare
        return max(_replicas_for(load), _replicas_for(self.peak), self.latency, current if self.latency_holds else 0)

    def as_terms(self) -> dict[str, float]:
        return {
            "in_flight": float(_replicas_for(self.in_flight)),
            "backlog": float(_replicas_for(self.backlog)),
            "latency": float(self.latency),
            "forecast": float(_replicas_for(self.forecast)),
            "peak": float(_replicas_for(self.peak)),
        }


class _Seen(NamedTuple):
    """One sample as the policy remembers it."""

    now_s: float
    in_flight: float
    in_service: float  # in_flight - queued: the requests in a batch
    arrivals_per_s: float
    mean_arrivals_per_s: float  # averaged over in_flight_window_s, for the peak the hold remembers


class StrataAutoscaler:
    """The product's policy: in-flight, backlog, latency and forecast terms under cooldowns and hysteresis."""

    def __init__(self, spec: AutoscalingSpec, latency_target_s: float | None) -> None:
        self.spec = spec
        self.latency_target_s = latency_target_s
        # Oldest first, as long as the longest window that reads it.
        self._history: deque[_Seen] = deque()
        self._last_upscale_s = -math.inf
        self._last_change_s = -math.inf

    def decide(self, sample: LoadSample) -> ScalingDecision:
        self._remember(sample)
        needs = self._needs(sample)
        desired, reason = self._choose(sample, needs)
        if desired > sample.replicas:
            self._last_upscale_s = sample.now_s
        if desired != sample.replicas:
            self._last_change_s = sample.now_s
        return ScalingDecision(desired, sample.replicas, reason, needs.as_terms())

    def _remember(self, sample: LoadSample) -> None:
        spec, now = self.spec, sample.now_s
        recent_rates = [seen.arrivals_per_s for seen in self._recent(spec.in_flight_window_s, now)]
        recent_rates.append(sample.arrivals_per_s)
        in_service = max(0.0, sample.in_flight - sample.queued)
        mean_rate = sum(recent_rates) / len(recent_rates)
        self._history.append(_Seen(now, sample.in_flight, in_service, sample.arrivals_per_s, mean_rate))
        keep_s = max(spec.in_flight_window_s, spec.forecast_window_s, spec.downscale_stabilization_s)
        while self._history and self._history[0].now_s <= now - keep_s:
            self._history.popleft()

    def _recent(self, window_s: float, now_s: float) -> list[_Seen]:
        return [seen for seen in self._history if seen.now_s > now_s - window_s]

    def _needs(self, sample: LoadSample) -> _Needs:
        spec, now = self.spec, sample.now_s
        recent = self._recent(spec.in_flight_window_s, now)
        mean_in_flight = sum(seen.in_flight for seen in recent) / len(recent)
        seconds_in_service = self._seconds_in_service(now)
        latency, holds = self._latency_need(sample)
        in_flight, backlog = mean_in_flight / spec.target_in_flight, sample.queued / spec.target_queue
        if sample.ready_replicas < sample.replicas:
            # While replicas start, the queue grows because they are not ready yet, not only because too
            # few were asked for. So the queue terms may not pass the count starting unless the work needs
            # more: the arrival rate plus the backlog served within one drain time (the forecast horizon,
            # about a cold start), times W, over the target per replica.
            drain_s = spec.forecast_horizon_s or spec.in_flight_window_s
            work_per_s = sample.arrivals_per_s + sample.queued / drain_s
            cap = max(float(sample.replicas), work_per_s * seconds_in_service / spec.target_in_flight)
            in_flight, backlog = min(in_flight, cap), min(backlog, cap)
        return _Needs(
            in_flight=in_flight,
            backlog=backlog,
            forecast=self._forecast_rate(now) * seconds_in_service / spec.target_in_flight,
            latency=latency,
            latency_holds=holds,
            peak=self._peak_rate(now) * seconds_in_service / spec.target_in_flight,
        )

    def _seconds_in_service(self, now_s: float) -> float:
        """Little's law over the forecast window, W = L / rate with L the requests in a batch.

        The batch, not the whole in-flight count: a queue inflates W by its wait, and the queue
        has its own term. Sums over the whole window keep the ratio's noise low.
        """
        window = self._recent(self.spec.forecast_window_s, now_s)
        arrivals = sum(seen.arrivals_per_s for seen in window)
        return sum(seen.in_service for seen in window) / arrivals if arrivals > 0 else 0.0

    def _forecast_rate(self, now_s: float) -> float:
        spec = self.spec
        if spec.forecast_horizon_s <= 0:
            return 0.0
        points = [(seen.now_s, seen.arrivals_per_s) for seen in self._recent(spec.forecast_window_s, now_s)]
        # Trust a trend only once it has seen half a window; a fresh policy has a few seconds of history.
        rate = projected_rate(points, now_s + spec.forecast_horizon_s, min_span_s=spec.forecast_window_s / 2)
        return rate or 0.0

    def _peak_rate(self, now_s: float) -> float:
        if self.spec.downscale_stabilization_s <= 0:
            return 0.0
        return max(seen.mean_arrivals_per_s for seen in self._recent(self.spec.downscale_stabilization_s, now_s))

    def _latency_need(self, sample: LoadSample) -> tuple[int, bool]:
        target, p99 = self.latency_target_s, sample.p99_latency_s
        if target is None or p99 is None:
            return 0, False
        ratio = p99 / target
        if ratio > 1.0:
            # Proportional to the replicas that produced this p99; starting ones are already on their way.
            return _replicas_for(max(sample.ready_replicas, 1) * min(ratio, MAX_LATENCY_FACTOR)), False
        return 0, ratio > 1.0 - self.spec.downscale_hysteresis

    def _choose(self, sample: LoadSample, needs: _Needs) -> tuple[int, str]:
        spec, current, now = self.spec, sample.replicas, sample.now_s
        floor = max(spec.min_replicas, 1)  # zero only through the idle rule below
        wanted, term = needs.upscale()
        # 1. From zero: any demand starts replicas at once; a request is being held for them.
        if current == 0:
            if _has_demand(sample):
                return min(max(wanted, floor), spec.max_replicas), "cold_start"
            return (spec.min_replicas, "bounds") if spec.min_replicas > 0 else (0, "steady")
        # 2. Idle long enough with a floor of zero: the last replicas go.
        if _idle_long_enough(spec, sample):
            return 0, "scale_to_zero"
        # 3. Outside min..max (a replica died, or the spec changed): back inside, no cooldown.
        if current < floor or current > spec.max_replicas:
            return min(max(wanted, floor), spec.max_replicas), "bounds"
        # 4. Up: fast, one cooldown since the last scale-up.
        target = min(max(wanted, floor), spec.max_replicas)
        if target > current:
            if now - self._last_upscale_s < spec.upscale_cooldown_s:
                return current, "cooldown"
            return target, term
        if wanted > current:
            return current, "bounds"  # at max_replicas and the load wants more
        # 5. Down: only when the load fits in fewer replicas with the hysteresis to spare.
        fits_in = min(max(needs.downscale(spec.downscale_hysteresis, current), floor), spec.max_replicas)
        if fits_in >= current:
            if target >= current:
                return current, "steady"
            return current, "latency" if needs.latency_holds else "hysteresis"
        if now - self._last_change_s < spec.downscale_cooldown_s:
            return current, "cooldown"
        step = max(1, math.floor(current * spec.downscale_max_share))
        if current - step > fits_in:
            return current - step, "step"
        return fits_in, term


class ThresholdAutoscaler:
    """The baseline: +1 when in-flight per replica is over the target, -1 when under half of it.

    No forecast, no latency or backlog term, no averaging: one cooldown per direction since the
    last change. It starts a replica from zero on demand and scales to zero when idle, as any
    policy must with ``min_replicas`` 0.
    """

    def __init__(self, spec: AutoscalingSpec, latency_target_s: float | None = None) -> None:
        self.spec = spec
        self.latency_target_s = latency_target_s  # unused: the baseline ignores latency
        self._last_change_s = -math.inf

    def decide(self, sample: LoadSample) -> ScalingDecision:
        desired, reason = self._choose(sample)
        if desired != sample.replicas:
            self._last_change_s = sample.now_s
        per_replica = sample.in_flight / max(sample.replicas, 1)
        return ScalingDecision(desired, sample.replicas, reason, {"in_flight_per_replica": per_replica})

    def _choose(self, sample: LoadSample) -> tuple[int, str]:
        spec, current, now = self.spec, sample.replicas, sample.now_s
        floor = max(spec.min_replicas, 1)
        if current == 0:
            if _has_demand(sample):
                return floor, "cold_start"
            return (spec.min_replicas, "bounds") if spec.min_replicas > 0 else (0, "steady")
        if _idle_long_enough(spec, sample):
            return 0, "scale_to_zero"
        if current < floor or current > spec.max_replicas:
            return min(max(current, floor), spec.max_replicas), "bounds"
        since_change = now - self._last_change_s
        per_replica = sample.in_flight / current
        if per_replica > spec.target_in_flight and current < spec.max_replicas:
            if since_change < spec.upscale_cooldown_s:
                return current, "cooldown"
            return current + 1, "in_flight"
        if per_replica < spec.target_in_flight / 2 and current > floor:
            if since_change < spec.downscale_cooldown_s:
                return current, "cooldown"
            return current - 1, "in_flight"
        return current, "steady"
