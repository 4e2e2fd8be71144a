"""Requests/min and tokens/min per key and per tenant, with the ``limits`` library.

Requests use a sliding-window counter by default: O(1) per check in memory and in Redis, exact within
a window, and across a window boundary it weighs the previous minute's count by how much of it still
overlaps (the ``limits`` library's documented approximation). ``moving-window`` is exact over any 60 s
but costs O(limit) per check, so it suits small limits. Tokens are only known
once a request is answered, so they use a fixed window that is charged afterwards: a request is
admitted while its window has tokens left, and what it used is then counted, even past the limit.
Storage is in memory (one gateway) or Redis (shared by every gateway; atomic Lua scripts).

When Redis cannot be reached (stopped, or silent past ``REDIS_TIMEOUT_S``), a request that must be
counted gets 503 with ``Retry-After`` (``dependency_unavailable``) instead of a 500: the gateway does
not guess at a shared limit it cannot see. Tokens charged after an answer are dropped meanwhile
(the answer has gone). redis-py reconnects by itself: service resumes with Redis, nothing to restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from strata.access.memory_windows import MemoryWindows
from strata.errors import DependencyUnavailable, RateLimited
from strata.principal import Principal
from strata.spec.models import RateLimitSpec

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2.0  # connect and per-command: a silent Redis answers 503 well within 5 s
_STORE_ERRORS = (RedisError, StorageError, OSError)  # OSError: refused connections, timeouts
_LOG_EVERY_S = 10.0  # an outage is logged, not every request it refuses


@dataclass(frozen=True)
class LimitStorage:
    """Where the counters live; ``close`` releases the Redis connections (memory holds none)."""

    storage: Storage
    pool: ConnectionPool | None = None

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()


def limit_storage(redis_url: str | None, namespace: str) -> LimitStorage:
    if redis_url is None:
        return LimitStorage(MemoryStorage())
    plain = redis_url.removeprefix("async+")
    # Ours, so that stopping the gateway closes every connection; bounded waits (see the module docstring).
    pool = ConnectionPool.from_url(plain, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    storage = storage_from_string(
        f"async+{plain}",
        implementation="redispy",
        key_prefix=namespace,
        connection_pool=pool,  # type: ignore[arg-type]
    )
    assert isinstance(storage, Storage)
    return LimitStorage(storage, pool)


@dataclass(frozen=True, slots=True)
class _Scope:
    """One level of limits (per key or per tenant) and how to name its counters."""

    level: str
    requests: RateLimitItem | None
    tokens: RateLimitItem | None

    def identity(self, principal: Principal) -> str:
        return principal.tenant if self.level == "tenant" else f"{principal.tenant}/{principal.key_id}"


class RateLimiter:
    def __init__(
        self,
        storage: LimitStorage,
        per_key: RateLimitSpec,
        per_tenant: RateLimitSpec,
        strategy: str = "sliding-window",
    ) -> None:
        self.storage = storage
        window = MovingWindowRateLimiter if strategy == "moving-window" else SlidingWindowCounterRateLimiter
        self.requests: MovingWindowRateLimiter | SlidingWindowCounterRateLimiter = window(storage.storage)
        self.tokens = FixedWindowRateLimiter(storage.storage)
        self.levels = [
            _Scope(level, _item(spec.requests_per_minute, "requests"), _item(spec.tokens_per_minute, "tokens"))
            for level, spec in (("key", per_key), ("tenant", per_tenant))
        ]
        self.levels = [s for s in self.levels if s.requests is not None or s.tokens is not None]
        self._logged_outage_at = float("-inf")
        # One gateway's own counters: plain arithmetic, nothing awaited (see memory_windows).
        self.local = MemoryWindows() if storage.pool is None and strategy != "moving-window" else None

    async def close(self) -> None:
        await self.storage.close()

    @property
    def active(self) -> bool:
        return bool(self.levels)

    async def admit(self, principal: Principal) -> None:
        """Take one request from every level's budget, or raise RateLimited naming the level
        (DependencyUnavailable while the shared store cannot be reached)."""
        if self.local is not None:
            self._admit_local(self.local, principal)
            return
        try:
            await self._admit_shared(principal)
        except _STORE_ERRORS as error:
            self._note_outage(error)
            raise DependencyUnavailable(
                "The rate-limit store cannot be reached right now; retry shortly.", retry_after_s=1.0
            ) from None

    def _note_outage(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._logged_outage_at >= _LOG_EVERY_S:
            self._logged_outage_at = now
            log.warning("the rate-limit store (Redis) cannot be reached: %s; refusing with 503 meanwhile", error)

    async def _admit_shared(self, principal: Principal) -> None:
        for scope in self.levels:
            identity = scope.identity(principal)
            if scope.tokens is not None and not await self.tokens.test(scope.tokens, scope.level, identity):
                raise await self._refusal(scope, identity, "tokens")
            if scope.requests is not None and not await self.requests.hit(scope.requests, scope.level, identity):
                raise await self._refusal(scope, identity, "requests")

    def _admit_local(self, local: MemoryWindows, principal: Principal) -> None:
        for scope in self.levels:
            identity = scope.identity(principal)
            if scope.tokens is not None and not local.fixed_test(
                f"tokens/{scope.level}/{identity}", scope.tokens.amount
            ):
                raise self._local_refusal(local, scope, identity, "tokens")
            if scope.requests is not None and not local.sliding_hit(
                f"requests/{scope.level}/{identity}", scope.requests.amount
            ):
                raise self._local_refusal(local, scope, identity, "requests")

    def _local_refusal(self, local: MemoryWindows, scope: _Scope, identity: str, unit: str) -> RateLimited:
        headers: dict[str, str] = {}
        retry_after_s = 1.0
        for kind, item in (("requests", scope.requests), ("tokens", scope.tokens)):
            if item is None:
                continue
            key = f"{kind}/{scope.level}/{identity}"
            stats = local.sliding_stats if kind == "requests" else local.fixed_stats
            remaining, reset_s = stats(key, item.amount)
            headers |= {
                f"x-ratelimit-limit-{kind}": str(item.amount),
                f"x-ratelimit-remaining-{kind}": str(remaining),
                f"x-ratelimit-reset-{kind}": f"{reset_s:.3f}s",
            }
            if kind == unit:
                retry_after_s = reset_s
        return _refused(scope, unit, retry_after_s, headers)

    async def charge_tokens(self, principal: Principal, tokens: int) -> None:
        if tokens <= 0:
            return
        if self.local is not None:
            for scope in self.levels:
                if scope.tokens is not None:
                    self.local.fixed_charge(f"tokens/{scope.level}/{scope.identity(principal)}", tokens)
            return
        try:
            for scope in self.levels:
                if scope.tokens is not None:
                    await self.tokens.hit(scope.tokens, scope.level, scope.identity(principal), cost=tokens)
        except _STORE_ERRORS as error:  # the answer has gone: these tokens go uncounted (module docstring)
            self._note_outage(error)

    async def _refusal(self, scope: _Scope, identity: str, unit: str) -> RateLimited:
        headers: dict[str, str] = {}
        retry_after_s = 1.0
        for kind, item, limiter in (
            ("requests", scope.requests, self.requests),
            ("tokens", scope.tokens, self.tokens),
        ):
            if item is None:
                continue
            stats = await limiter.get_window_stats(item, scope.level, identity)
            reset_s = max(0.0, stats.reset_time - time.time())
            headers |= {
                f"x-ratelimit-limit-{kind}": str(item.amount),
                f"x-ratelimit-remaining-{kind}": str(max(0, stats.remaining)),
                f"x-ratelimit-reset-{kind}": f"{reset_s:.3f}s",
            }
            if kind == unit:
                retry_after_s = reset_s
        return _refused(scope, unit, retry_after_s, headers)


def _refused(scope: _Scope, unit: str, retry_after_s: float, headers: dict[str, str]) -> RateLimited:
    limit = scope.requests if unit == "requests" else scope.tokens
    assert limit is not None
    message = f"Rate limit reached for {unit} per minute (per {scope.level}): limit {limit.amount}."
    return RateLimited(message, retry_after_s=retry_after_s, limit_headers=headers)


def _item(amount: int | None, unit: str) -> RateLimitItem | None:
    return None if amount is None else RateLimitItemPerMinute(amount, namespace=unit)
