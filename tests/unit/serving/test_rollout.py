from fake_clock import FakeClock

from strata.serving.outcomes import OutcomeWindow, WindowStats
from strata.serving.rollout import Rollout, RolloutPhase
from strata.spec.resilience import RolloutSpec

SPEC = RolloutSpec(steps=[5, 50, 100], window_s=10, min_requests=10, max_error_rate_increase=0.05)
HEALTHY = WindowStats(requests=200, errors=1, p99_s=0.050)


def _rollout() -> tuple[Rollout, FakeClock]:
    clock = FakeClock()
    return Rollout(stable="v1", canary="v2", spec=SPEC, clock=clock), clock


def test_starts_at_the_first_step() -> None:
    rollout, _ = _rollout()
    assert rollout.weights() == {"v1": 95, "v2": 5}


def test_error_regression_rolls_back_at_once() -> None:
    rollout, _ = _rollout()
    assert rollout.evaluate(HEALTHY, WindowStats(requests=10, errors=2, p99_s=0.05))
    assert rollout.phase is RolloutPhase.ROLLED_BACK
    assert rollout.weights() == {"v1": 100, "v2": 0}
    assert "error rate" in rollout.reason


def test_latency_regression_rolls_back() -> None:
    rollout, _ = _rollout()
    assert rollout.evaluate(HEALTHY, WindowStats(requests=10, errors=0, p99_s=0.5))
    assert "p99" in rollout.reason


def test_small_differences_are_not_regressions() -> None:
    rollout, _ = _rollout()
    # 2x stable's p99 but only 10 ms more: inside p99_slack_ms.
    assert not rollout.evaluate(WindowStats(200, 0, 0.010), WindowStats(10, 0, 0.020))
    assert not rollout.evaluate(HEALTHY, WindowStats(requests=9, errors=9, p99_s=None))  # too few to judge
    assert rollout.phase is RolloutPhase.RUNNING


def test_healthy_windows_promote_step_by_step() -> None:
    rollout, clock = _rollout()
    clock.advance(9)
    assert not rollout.evaluate(HEALTHY, HEALTHY)
    clock.advance(1)
    assert rollout.evaluate(HEALTHY, HEALTHY)
    assert rollout.weights() == {"v1": 50, "v2": 50}
    clock.advance(10)
    assert rollout.evaluate(HEALTHY, HEALTHY)
    assert rollout.phase is RolloutPhase.PROMOTED
    assert rollout.weights() == {"v1": 0, "v2": 100}


def test_a_window_without_enough_canary_requests_waits() -> None:
    rollout, clock = _rollout()
    clock.advance(30)
    assert not rollout.evaluate(HEALTHY, WindowStats(3, 0, 0.05))
    assert rollout.canary_weight == 5


def test_manual_promote_and_abort() -> None:
    rollout, _ = _rollout()
    rollout.promote()
    assert rollout.canary_weight == 50
    rollout.roll_back("operator")
    assert rollout.canary_weight == 0
    assert [e.what.split(":")[0] for e in rollout.events][-1] == "rolled back"


def test_outcome_window_forgets_old_samples() -> None:
    clock = FakeClock()
    window = OutcomeWindow(clock=clock)
    for i in range(100):
        window.record(ok=i % 10 != 0, latency_s=i / 1000)
    stats = window.stats(10)
    assert (stats.requests, stats.errors) == (100, 10)
    assert stats.p99_s == 0.099
    clock.advance(11)
    window.record(ok=True, latency_s=0.5)
    assert window.stats(10) == WindowStats(1, 0, 0.5)
