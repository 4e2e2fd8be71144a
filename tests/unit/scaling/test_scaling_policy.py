"""Each term and guard of the autoscaling policies, on hand-built samples with hand-computed answers."""

from typing import Any

import pytest

from strata.scaling import LoadSample, ScalingDecision, StrataAutoscaler, ThresholdAutoscaler
from strata.spec.scaling import AutoscalingSpec

# Small numbers that are easy to check by hand. The in-flight window is shorter than one control
# interval, so each sample stands alone unless a test says otherwise; no forecast, no peak hold.
PLAIN: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 16,
    "target_in_flight": 4.0,
    "target_queue": 4.0,
    "upscale_cooldown_s": 5.0,
    "downscale_cooldown_s": 30.0,
    "downscale_hysteresis": 0.2,
    "downscale_max_share": 0.5,
    "downscale_stabilization_s": 0.0,
    "in_flight_window_s": 0.1,
    "forecast_horizon_s": 0.0,
}


def _spec(**changes: Any) -> AutoscalingSpec:
    return AutoscalingSpec(**{**PLAIN, **changes})


def _sample(
    now_s: float = 100.0,
    replicas: int = 2,
    *,
    ready: int | None = None,
    in_flight: float = 0.0,
    queued: float = 0.0,
    p99_s: float | None = None,
    arrivals: float = 0.0,
    idle_s: float = 0.0,
) -> LoadSample:
    return LoadSample(
        now_s=now_s,
        replicas=replicas,
        ready_replicas=replicas if ready is None else ready,
        in_flight=in_flight,
        queued=queued,
        p99_latency_s=p99_s,
        arrivals_per_s=arrivals,
        idle_s=idle_s,
    )


def _decide(sample: LoadSample, latency_target_s: float | None = None, **changes: Any) -> ScalingDecision:
    return StrataAutoscaler(_spec(**changes), latency_target_s).decide(sample)


# In flight


def test_in_flight_above_target_asks_for_the_replicas_that_carry_it() -> None:
    decision = _decide(_sample(replicas=2, in_flight=20.0))
    assert (decision.desired, decision.current, decision.reason) == (5, 2, "in_flight")  # ceil(20 / 4)
    assert decision.terms["in_flight"] == 5.0


def test_in_flight_exactly_at_target_is_steady() -> None:
    decision = _decide(_sample(replicas=3, in_flight=12.0))
    assert (decision.desired, decision.reason) == (3, "steady")


def test_in_flight_is_averaged_over_its_window() -> None:
    policy = StrataAutoscaler(_spec(in_flight_window_s=5.0), None)
    for step in range(9):
        assert policy.decide(_sample(now_s=100.0 + 0.5 * step, in_flight=8.0)).desired == 2
    spike = policy.decide(_sample(now_s=104.5, in_flight=20.0))
    # Mean of nine 8s and one 20 is 9.2: three replicas, not the five the spike alone asks for.
    assert (spike.desired, spike.terms["in_flight"]) == (3, 3.0)


# Backlog


def test_backlog_asks_for_replicas_by_queue_per_replica() -> None:
    # In flight alone wants 2 (8 / 4); 14 waiting at 4 per replica want 4.
    decision = _decide(_sample(replicas=2, in_flight=8.0, queued=14.0))
    assert (decision.desired, decision.reason) == (4, "backlog")
    assert (decision.terms["in_flight"], decision.terms["backlog"]) == (2.0, 4.0)


# Latency


def test_latency_over_target_scales_the_ready_replicas_by_the_ratio() -> None:
    decision = _decide(_sample(replicas=3, in_flight=12.0, p99_s=0.3), latency_target_s=0.2)
    assert (decision.desired, decision.reason) == (5, "latency")  # ceil(3 x 1.5)
    assert decision.terms["latency"] == 5.0


def test_latency_factor_is_capped_at_double() -> None:
    decision = _decide(_sample(replicas=3, in_flight=12.0, p99_s=1.0), latency_target_s=0.2)
    assert (decision.desired, decision.reason) == (6, "latency")  # 3 x min(5, 2)


def test_latency_counts_only_ready_replicas_so_starting_ones_are_not_doubled() -> None:
    # 3 ready at 1.5x the target want 5; 5 are already there (2 starting): nothing more.
    decision = _decide(_sample(replicas=5, ready=3, in_flight=12.0, p99_s=0.3), latency_target_s=0.2)
    assert (decision.desired, decision.reason) == (5, "steady")


def test_latency_near_target_holds_a_scale_down() -> None:
    decision = _decide(_sample(replicas=4, in_flight=0.0, p99_s=0.19), latency_target_s=0.2)
    assert (decision.desired, decision.reason) == (4, "latency")


def test_latency_well_under_target_allows_a_scale_down() -> None:
    decision = _decide(_sample(replicas=4, in_flight=0.0, p99_s=0.1), latency_target_s=0.2)
    assert decision.desired == 2  # half of four per step


def test_no_p99_leaves_the_decision_to_the_other_terms() -> None:
    steady = _decide(_sample(replicas=2, in_flight=8.0, p99_s=None), latency_target_s=0.2)
    assert (steady.desired, steady.reason, steady.terms["latency"]) == (2, "steady", 0.0)
    up = _decide(_sample(replicas=2, in_flight=20.0, p99_s=None), latency_target_s=0.2)
    assert (up.desired, up.reason) == (5, "in_flight")


def test_no_latency_target_ignores_p99() -> None:
    decision = _decide(_sample(replicas=2, in_flight=8.0, p99_s=5.0), latency_target_s=None)
    assert (decision.desired, decision.reason) == (2, "steady")


# Forecast


def _ramp(policy: StrataAutoscaler, until_s: float, rate_at: Any) -> ScalingDecision:
    """Samples every 0.5 s of a load whose requests each spend 0.1 s in a batch, on two replicas; the last decision."""
    decision, now = None, 0.0
    while now < until_s:
        now += 0.5
        rate = rate_at(now)
        decision = policy.decide(_sample(now_s=now, replicas=2, in_flight=rate * 0.1, arrivals=rate))
    assert decision is not None
    return decision


def test_forecast_starts_replicas_for_the_rate_one_horizon_ahead() -> None:
    spec = _spec(
        max_replicas=64, target_in_flight=2.0, upscale_cooldown_s=0.0, in_flight_window_s=10.0,
        forecast_window_s=30.0, forecast_horizon_s=10.0,
    )  # fmt: skip
    decision = _ramp(StrataAutoscaler(spec, None), 30.0, lambda t: 100.0 + 10.0 * t)
    # At 30 s the rate is 400/s (40 in flight: 20 replicas); the line says 500/s at 40 s: 50 in flight.
    assert (decision.desired, decision.reason) == (25, "forecast")
    assert decision.terms["in_flight"] == 18.0  # the 10 s average lags the ramp: 35.25 in flight
    assert decision.terms["forecast"] == 25.0


def test_forecast_on_a_flat_load_asks_no_more_than_in_flight() -> None:
    spec = _spec(
        max_replicas=64, target_in_flight=2.0, upscale_cooldown_s=0.0, in_flight_window_s=10.0, forecast_horizon_s=10.0
    )
    decision = _ramp(StrataAutoscaler(spec, None), 30.0, lambda t: 300.0)
    assert decision.terms["forecast"] == decision.terms["in_flight"] == 15.0
    assert decision.desired == 15


def test_forecast_waits_for_half_a_window_of_history() -> None:
    spec = _spec(max_replicas=64, target_in_flight=2.0, upscale_cooldown_s=0.0, forecast_horizon_s=10.0)
    decision = _ramp(StrataAutoscaler(spec, None), 10.0, lambda t: 100.0 + 10.0 * t)
    assert decision.terms["forecast"] == 0.0  # 10 s seen of a 30 s window


def test_horizon_zero_turns_the_forecast_off() -> None:
    spec = _spec(max_replicas=64, target_in_flight=2.0, upscale_cooldown_s=0.0, forecast_horizon_s=0.0)
    decision = _ramp(StrataAutoscaler(spec, None), 30.0, lambda t: 100.0 + 10.0 * t)
    assert decision.terms["forecast"] == 0.0
    assert decision.reason == "in_flight"


# Cooldowns, hysteresis, step


def test_upscale_cooldown_blocks_a_second_scale_up_until_it_passes() -> None:
    policy = StrataAutoscaler(_spec(), None)
    assert policy.decide(_sample(now_s=0.0, replicas=2, in_flight=20.0)).desired == 5
    blocked = policy.decide(_sample(now_s=4.5, replicas=5, in_flight=40.0))
    assert (blocked.desired, blocked.reason) == (5, "cooldown")
    allowed = policy.decide(_sample(now_s=5.0, replicas=5, in_flight=40.0))
    assert (allowed.desired, allowed.reason) == (10, "in_flight")


def test_downscale_waits_for_its_cooldown_after_any_change() -> None:
    policy = StrataAutoscaler(_spec(), None)
    assert policy.decide(_sample(now_s=0.0, replicas=2, in_flight=20.0)).desired == 5
    blocked = policy.decide(_sample(now_s=29.5, replicas=5, in_flight=0.0))
    assert (blocked.desired, blocked.reason) == (5, "cooldown")
    assert policy.decide(_sample(now_s=30.0, replicas=5, in_flight=0.0)).desired == 3  # 5 - floor(2.5)


def test_hysteresis_blocks_a_marginal_scale_down() -> None:
    # 10 in flight fit in 3 replicas at 4 each, but not with 20% to spare (3 x 4 x 0.8 = 9.6).
    decision = _decide(_sample(replicas=4, in_flight=10.0))
    assert (decision.desired, decision.reason) == (4, "hysteresis")


def test_load_that_fits_with_the_hysteresis_to_spare_scales_down() -> None:
    decision = _decide(_sample(replicas=4, in_flight=9.0))  # 9 <= 9.6
    assert (decision.desired, decision.reason) == (3, "in_flight")


@pytest.mark.parametrize(
    ("share", "replicas", "expected"),
    [(0.5, 10, 5), (0.25, 10, 8), (0.25, 3, 2), (1.0, 10, 1)],
)
def test_a_scale_down_removes_at_most_its_share_of_replicas(share: float, replicas: int, expected: int) -> None:
    decision = _decide(_sample(replicas=replicas, in_flight=0.0), downscale_max_share=share)
    assert decision.desired == expected
    assert decision.reason == ("step" if expected > 1 else "in_flight")


def test_peak_hold_keeps_the_replicas_a_recent_burst_needed() -> None:
    policy = StrataAutoscaler(_spec(downscale_stabilization_s=60.0, downscale_cooldown_s=0.0), None)
    # A burst: 200/s, each request 0.1 s in a batch: 20 in flight, 5 replicas.
    for step in range(10):
        policy.decide(_sample(now_s=0.5 * step, replicas=5, in_flight=20.0, arrivals=200.0))
    quiet = policy.decide(_sample(now_s=40.0, replicas=5, in_flight=1.0, arrivals=10.0))
    assert (quiet.desired, quiet.reason, quiet.terms["peak"]) == (5, "hysteresis", 5.0)
    later = policy.decide(_sample(now_s=70.0, replicas=5, in_flight=1.0, arrivals=10.0))
    assert later.terms["peak"] == 1.0  # the burst left the 60 s window
    assert later.desired == 3


# Bounds, zero


def test_max_replicas_caps_a_scale_up() -> None:
    decision = _decide(_sample(replicas=2, in_flight=1000.0), max_replicas=6)
    assert (decision.desired, decision.reason) == (6, "in_flight")
    at_max = _decide(_sample(replicas=6, in_flight=1000.0), max_replicas=6)
    assert (at_max.desired, at_max.reason) == (6, "bounds")


def test_min_replicas_floors_a_scale_down() -> None:
    decision = _decide(_sample(replicas=3, in_flight=0.0), min_replicas=3)
    assert (decision.desired, decision.reason) == (3, "steady")


def test_below_min_is_restored_at_once_despite_cooldown() -> None:
    policy = StrataAutoscaler(_spec(min_replicas=3), None)
    assert policy.decide(_sample(now_s=0.0, replicas=3, in_flight=20.0)).desired == 5
    decision = policy.decide(_sample(now_s=1.0, replicas=1, in_flight=0.0))  # four replicas died
    assert (decision.desired, decision.reason) == (3, "bounds")


def test_scale_to_zero_after_the_idle_time() -> None:
    kept = _decide(_sample(replicas=1, idle_s=59.5), min_replicas=0, scale_to_zero_after_s=60.0)
    assert (kept.desired, kept.reason) == (1, "steady")
    gone = _decide(_sample(replicas=1, idle_s=60.0), min_replicas=0, scale_to_zero_after_s=60.0)
    assert (gone.desired, gone.reason) == (0, "scale_to_zero")


def test_no_scale_to_zero_with_a_floor_or_with_work_left() -> None:
    floored = _decide(_sample(replicas=1, idle_s=1000.0), min_replicas=1, scale_to_zero_after_s=60.0)
    assert floored.desired == 1
    busy = _decide(_sample(replicas=1, in_flight=1.0, idle_s=1000.0), min_replicas=0, scale_to_zero_after_s=60.0)
    assert busy.desired == 1


def test_cold_start_from_zero_ignores_cooldowns_and_sizes_to_the_backlog() -> None:
    policy = StrataAutoscaler(_spec(min_replicas=0, upscale_cooldown_s=1000.0, scale_to_zero_after_s=60.0), None)
    assert policy.decide(_sample(now_s=0.0, replicas=1, in_flight=20.0)).desired == 5
    assert policy.decide(_sample(now_s=100.0, replicas=1, idle_s=60.0)).desired == 0
    held = policy.decide(_sample(now_s=100.5, replicas=0, queued=10.0, arrivals=20.0))
    assert (held.desired, held.reason) == (3, "cold_start")  # ceil(10 held / 4 per replica)


def test_zero_with_no_demand_stays_at_zero() -> None:
    decision = _decide(_sample(replicas=0), min_replicas=0)
    assert (decision.desired, decision.reason) == (0, "steady")


def test_one_arrival_starts_one_replica_from_zero() -> None:
    decision = _decide(_sample(replicas=0, arrivals=2.0), min_replicas=0)
    assert (decision.desired, decision.reason) == (1, "cold_start")


# The threshold baseline


def test_threshold_adds_one_above_target_and_removes_one_under_half() -> None:
    policy = ThresholdAutoscaler(_spec(upscale_cooldown_s=5.0, downscale_cooldown_s=10.0))
    assert policy.decide(_sample(now_s=0.0, replicas=2, in_flight=40.0)).desired == 3  # +1, not the 10 it needs
    assert policy.decide(_sample(now_s=2.0, replicas=3, in_flight=40.0)).reason == "cooldown"
    assert policy.decide(_sample(now_s=5.0, replicas=3, in_flight=40.0)).desired == 4
    assert policy.decide(_sample(now_s=20.0, replicas=4, in_flight=10.0)).reason == "steady"  # 2.5: in the band
    assert policy.decide(_sample(now_s=20.0, replicas=4, in_flight=7.0)).desired == 3  # 1.75 < 2


def test_threshold_ignores_latency_and_backlog() -> None:
    policy = ThresholdAutoscaler(_spec(), latency_target_s=0.1)
    decision = policy.decide(_sample(replicas=2, in_flight=8.0, queued=100.0, p99_s=10.0))
    assert (decision.desired, decision.reason) == (2, "steady")
