from fake_clock import FakeClock

from strata.serving.breaker import BreakerState, CircuitBreaker
from strata.spec.resilience import BreakerSpec

SPEC = BreakerSpec(consecutive_failures=3, open_s=1.0, max_open_s=3.0)


def _breaker() -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(SPEC, clock=clock), clock


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _ = _breaker()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the run
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_half_open_lets_one_probe_through_and_success_closes() -> None:
    breaker, clock = _breaker()
    breaker.trip("test")
    clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_reopens_for_twice_as_long_capped() -> None:
    breaker, clock = _breaker()
    breaker.trip("test")
    for expected_open_s in (2.0, 3.0, 3.0):
        clock.advance(breaker.retry_after_s())
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        assert breaker.retry_after_s() == expected_open_s


def test_released_probe_lets_another_try() -> None:
    breaker, clock = _breaker()
    breaker.trip("test")
    clock.advance(1.0)
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


def test_reset_forgets_everything() -> None:
    breaker, _ = _breaker()
    breaker.trip("died")
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.reason == "died"  # the last reason stays visible to operators
