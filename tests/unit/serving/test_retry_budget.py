from fake_clock import FakeClock

from strata.serving.retry_budget import RetryBudget
from strata.spec.resilience import RetrySpec


def test_retries_are_capped_at_the_ratio_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetrySpec(budget_ratio=0.1, min_retries_per_s=0), clock=clock)
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.try_spend() for _ in range(50))
    assert granted == 10
    assert budget.denied == 40


def test_floor_lets_a_quiet_deployment_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetrySpec(budget_ratio=0.0, min_retries_per_s=1), clock=clock, window_s=10)
    budget.record_request()
    assert sum(budget.try_spend() for _ in range(20)) == 10


def test_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetrySpec(budget_ratio=0.5, min_retries_per_s=0), clock=clock, window_s=10)
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_spend() for _ in range(10)) == 5
    clock.advance(11)  # the old requests and retries left the window
    assert not budget.try_spend()
    budget.record_request()
    budget.record_request()
    assert budget.try_spend()
