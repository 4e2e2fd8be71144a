"""Rate limits (memory and Redis) under concurrency, budgets, and the scope table."""

import asyncio
import secrets
from datetime import UTC, datetime

import pytest

from strata.access.quotas import Budgets
from strata.access.ratelimit import RateLimiter, limit_storage
from strata.access.usage import Totals
from strata.errors import QuotaExceeded, RateLimited
from strata.principal import Principal
from strata.spec import AppSpec, BudgetSpec, RateLimitSpec

REDIS_URL = "redis://127.0.0.1:6379/0"


def _principal(tenant: str = "acme", key: str = "k1") -> Principal:
    return Principal(tenant=tenant, key_id=key, scopes=frozenset({"infer"}))


async def _admitted(limiter: RateLimiter, principals: list[Principal]) -> int:
    async def one(principal: Principal) -> bool:
        try:
            await limiter.admit(principal)
        except RateLimited:
            return False
        return True

    return sum(await asyncio.gather(*(one(p) for p in principals)))


@pytest.mark.parametrize("strategy", ["sliding-window", "moving-window"])
async def test_memory_limits_never_admit_more_than_the_limit_under_concurrency(strategy: str) -> None:
    limiter = RateLimiter(limit_storage(None, "t"), RateLimitSpec(requests_per_minute=50), RateLimitSpec(), strategy)
    assert await _admitted(limiter, [_principal()] * 200) == 50
    assert await _admitted(limiter, [_principal(key="k2")] * 10) == 10  # another key has its own window


async def test_the_tenant_limit_spans_its_keys() -> None:
    limiter = RateLimiter(limit_storage(None, "t"), RateLimitSpec(), RateLimitSpec(requests_per_minute=30))
    principals = [_principal(key=f"k{i % 5}") for i in range(100)] + [_principal(tenant="other")] * 5
    assert await _admitted(limiter, principals) == 35


async def test_a_refusal_carries_retry_after_and_openai_headers() -> None:
    limiter = RateLimiter(
        limit_storage(None, "t"), RateLimitSpec(requests_per_minute=1, tokens_per_minute=100), RateLimitSpec()
    )
    await limiter.admit(_principal())
    with pytest.raises(RateLimited) as caught:
        await limiter.admit(_principal())
    headers = caught.value.headers()
    assert 1 <= int(headers["Retry-After"]) <= 61
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "100"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert caught.value.status == 429
    assert caught.value.code == "rate_limit_exceeded"


async def test_tokens_per_minute_stop_requests_once_spent() -> None:
    limiter = RateLimiter(limit_storage(None, "t"), RateLimitSpec(tokens_per_minute=100), RateLimitSpec())
    await limiter.admit(_principal())
    await limiter.charge_tokens(_principal(), 150)  # counted in full, even past the limit
    with pytest.raises(RateLimited, match="tokens"):
        await limiter.admit(_principal())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["sliding-window", "moving-window"])
async def test_redis_limits_hold_across_two_gateways(strategy: str) -> None:
    # Two limiters with their own Redis connections stand for two gateway processes.
    namespace = f"strata-test-{secrets.token_hex(6)}"
    spec = RateLimitSpec(requests_per_minute=40)
    first = RateLimiter(limit_storage(REDIS_URL, namespace), spec, RateLimitSpec(), strategy)
    second = RateLimiter(limit_storage(REDIS_URL, namespace), spec, RateLimitSpec(), strategy)
    try:
        # Interleaved: each gateway's requests reach Redis mixed with the other's.
        admitted = await asyncio.gather(*(_admitted(limiter, [_principal()]) for limiter in [first, second] * 60))
        assert sum(admitted) == 40
        assert sum(admitted[0::2]) > 0
        assert sum(admitted[1::2]) > 0
    finally:
        await first.close()
        await second.close()


def test_budgets_stop_hard_and_alert_once() -> None:
    budgets = Budgets(
        [BudgetSpec(tenant="acme", max_tokens=100, alert_fraction=0.5), BudgetSpec(tenant="*", max_cost=1.0)]
    )
    now = datetime.now(UTC)
    budgets.check("acme")
    assert budgets.add("acme", Totals(1, 30, 10), now) is None
    assert budgets.add("acme", Totals(1, 10, 10), now) is not None  # 60 % > 50 %: alert
    assert budgets.add("acme", Totals(1, 10, 10), now) is None  # only once per period
    budgets.check("acme")
    budgets.add("acme", Totals(1, 20, 10), now)
    with pytest.raises(QuotaExceeded) as caught:
        budgets.check("acme")
    assert caught.value.status == 429
    assert caught.value.code == "insufficient_quota"
    assert caught.value.error_type == "insufficient_quota"
    budgets.add("other", Totals(1, 0, 0, cost=1.5), now)  # the '*' budget covers everyone else
    with pytest.raises(QuotaExceeded, match="cost"):
        budgets.check("other")
    budgets.check("third")


def test_access_spec_references_are_checked() -> None:
    base = {
        "models": [{"name": "m", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "d", "model": "m"}],
        "routes": [{"name": "r", "deployment": "d"}],
    }
    bad = {"prices": [{"deployment": "nope", "per_compute_second": 1}], "budgets": [{"tenant": "a"}, {"tenant": "a"}]}
    with pytest.raises(ValueError, match=r"access.prices\[0\].deployment: unknown deployment 'nope'") as caught:
        AppSpec.model_validate({**base, "access": bad})
    assert "access.budgets[1].tenant: duplicate tenant 'a'" in str(caught.value)
    with pytest.raises(ValueError, match="requests_per_minute"):
        AppSpec.model_validate({**base, "access": {"per_key": {"requests_per_minute": 0}}})
