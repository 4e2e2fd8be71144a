"""Events that can start pipelines: one typed record, two buses.

Embedded (no ``store.redis_url``), events stay in the process: ``MemoryBus`` hands each one to the
subscribers on the event loop. Distributed, ``RedisStreamBus`` appends them to a Redis stream that
every gateway and worker reads through one consumer group: each event goes to one consumer, which
acknowledges it only after the jobs it starts are committed. A consumer that dies before the
acknowledgement leaves the event pending; another claims it after ``claim_idle_s`` and delivers it
again (at least once). The jobs an event starts carry the event id in their idempotency key, so a
second delivery starts nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # e.g. "file.uploaded", "telemetry.received"
    tenant: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"evt_{secrets.token_hex(12)}")
    at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls(**orjson.loads(raw))


Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def start(self, handler: Handler) -> None:
        """Deliver events to ``handler`` from now on (at most one handler per process)."""

    async def stop(self) -> None: ...


class MemoryBus:
    """In-process delivery: ``publish`` returns once the handler ran (its jobs are committed)."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def publish(self, event: Event) -> None:
        if self._handler is not None:
            await self._handler(event)

    def start(self, handler: Handler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None


class RedisStreamBus:
    """A Redis stream and one consumer group shared by every process of the app."""

    def __init__(
        self,
        redis_url: str,
        *,
        stream: str = "strata:events",
        group: str = "strata-triggers",
        max_length: int = 100_000,
        claim_idle_s: float = 30.0,
        block_ms: int = 1000,
    ) -> None:
        self._redis = Redis.from_url(redis_url.removeprefix("async+"))
        self.stream, self.group = stream, group
        self._max_length = max_length  # approximate trimming keeps the stream bounded
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._block_ms = block_ms
        self._consumer = f"consumer-{secrets.token_hex(6)}"
        self._task: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        await self._redis.xadd(self.stream, {"event": event.to_json()}, maxlen=self._max_length, approximate=True)

    def start(self, handler: Handler) -> None:
        self._task = asyncio.create_task(self._consume(handler), name="event-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()

    async def _consume(self, handler: Handler) -> None:
        while True:
            try:
                await self._ensure_group()
                await self._claim_abandoned(handler)
                answer: Any = await self._redis.xreadgroup(
                    self.group, self._consumer, {self.stream: ">"}, count=100, block=self._block_ms
                )
                for _, entries in answer or []:
                    for entry_id, fields in entries:
                        await self._deliver(handler, entry_id, fields)
            except RedisError as error:  # Redis away: retry; nothing is acknowledged, so nothing is lost
                log.warning("event stream unavailable (%s); retrying", error)
                await asyncio.sleep(1.0)

    async def _ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    async def _claim_abandoned(self, handler: Handler) -> None:
        """Events another consumer took and never acknowledged (it died): deliver them here."""
        claimed: Any = await self._redis.xautoclaim(
            self.stream, self.group, self._consumer, min_idle_time=self._claim_idle_ms, count=100
        )
        for entry_id, fields in claimed[1]:  # [next start id, entries, deleted ids]
            await self._deliver(handler, entry_id, fields)

    async def _deliver(self, handler: Handler, entry_id: Any, fields: Any) -> None:
        try:
            event = Event.from_json(fields[b"event"])
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            log.error("event stream entry %s is not an event; dropped", entry_id)
            await self._redis.xack(self.stream, self.group, entry_id)
            return
        try:
            await handler(event)
        except Exception:  # a boundary: left pending, so it is claimed and delivered again later
            log.exception("event %s (%s) could not start its pipelines; it will be retried", event.id, event.type)
            return
        await self._redis.xack(self.stream, self.group, entry_id)


def event_bus(redis_url: str | None) -> EventBus:
    return MemoryBus() if redis_url is None else RedisStreamBus(redis_url)
