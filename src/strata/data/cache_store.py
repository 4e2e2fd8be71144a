"""Where kept answers live: in memory (one gateway) or in Redis (every gateway that shares it).

Both take and give bytes under string keys, with a time to live. The memory store is an LRU bounded
by entries and bytes: a lookup is a dictionary read and a move to the end, microseconds. The Redis
store is for answers shared by several gateways; it is only ever a cache, so any Redis failure or
slow answer is a miss (and a failed write is dropped), never an error. After a failure it skips
Redis for ``RETRY_AFTER_S``, so a Redis outage costs requests nothing but the misses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0
MAX_PENDING_WRITES = 1000  # writes in flight to Redis; past it new ones are dropped (it is a cache)
_PURGE_BATCH = 500


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep ``value`` (now, or soon: a remote store writes in the background)."""

    def purge(self, prefix: str) -> None:
        """Drop every key that starts with ``prefix``."""


class MemoryStore:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._now = time.monotonic
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key -> (expires at, value)
        self.bytes = 0
        self.evicted = 0  # entries dropped to stay within the bounds (expiry and purges not counted)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self.read(key)

    def read(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._now():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._now() + ttl_s, value)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evicted += 1

    def purge(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)


class RedisStore:
    """Answers in Redis under ``namespace:key``, each with Redis's own expiry (PX)."""

    def __init__(self, redis_url: str, namespace: str, timeout_s: float) -> None:
        self._redis = Redis.from_url(
            redis_url.removeprefix("async+"), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = namespace + ":"
        self._timeout_s = timeout_s
        self._skip_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()
        self.errors = 0  # failed or slow reads and writes since start (a metric reads it)

    async def get(self, key: str) -> bytes | None:
        if self._skip_until and time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                value = await self._redis.get(self._prefix + key)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed("read", error)
            return None
        self._skip_until = 0.0
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(self._pending) >= MAX_PENDING_WRITES or (self._skip_until and time.monotonic() < self._skip_until):
            return
        task = asyncio.get_running_loop().create_task(self._write(self._prefix + key, value, ttl_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.set(key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError, TimeoutError) as error:
            self._failed("write", error)

    def purge(self, prefix: str) -> None:
        task = asyncio.get_running_loop().create_task(self._purge(self._prefix + prefix))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _purge(self, prefix: str) -> None:
        # Off the request path; a purge that fails leaves the entries to expire (they no longer match).
        try:
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=prefix + "*", count=_PURGE_BATCH):
                batch.append(key)
                if len(batch) == _PURGE_BATCH:
                    await self._redis.unlink(*batch)
                    batch = []
            if batch:
                await self._redis.unlink(*batch)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed("purge", error)

    def _failed(self, what: str, error: BaseException) -> None:
        self.errors += 1
        if not self._skip_until:  # one line per outage, not one per request
            log.warning("response cache: Redis %s failed (%s); answering from the models", what, error or "timeout")
        self._skip_until = time.monotonic() + RETRY_AFTER_S

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()
