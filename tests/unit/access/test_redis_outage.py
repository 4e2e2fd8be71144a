"""Redis stopped under load: requests that need the shared rate limits get 503 + Retry-After within
5 s, none a 500, and service comes back by itself when Redis returns. A private redis-server on a
free port is started and stopped here (the shared one is never touched)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.access.ratelimit import RateLimiter, limit_storage
from strata.errors import DependencyUnavailable
from strata.principal import Principal
from strata.spec.models import RateLimitSpec
from strata.testing.private_redis import PrivateRedis, available

pytestmark = pytest.mark.skipif(not available(), reason="needs redis-server (apt: redis-server)")

ALICE = Principal(tenant="acme", key_id="k1", scopes=frozenset({"infer"}))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_stopped_redis_answers_503_quickly_and_service_resumes_by_itself(redis: PrivateRedis) -> None:
    storage = limit_storage(f"redis://127.0.0.1:{redis.port}/0", f"strata:test-{secrets.token_hex(4)}")
    limiter = RateLimiter(storage, RateLimitSpec(requests_per_minute=10_000, tokens_per_minute=10_000_000),
                          RateLimitSpec())  # fmt: skip
    try:
        await asyncio.gather(*(limiter.admit(ALICE) for _ in range(50)))  # under load
        redis.stop()
        started = time.monotonic()
        outcomes = await asyncio.gather(*(limiter.admit(ALICE) for _ in range(50)), return_exceptions=True)
        assert time.monotonic() - started < 5
        assert all(isinstance(outcome, DependencyUnavailable) for outcome in outcomes), outcomes
        refused = outcomes[0]
        assert isinstance(refused, DependencyUnavailable)
        assert refused.status == 503
        assert refused.headers()["Retry-After"] == "1"
        await limiter.charge_tokens(ALICE, 100)  # after an answer: dropped quietly, never raised
        redis.start()  # the same port: the pool reconnects by itself
        await limiter.admit(ALICE)
    finally:
        await limiter.close()
