"""Telemetry over Redis Streams, for the distributed case: producers XADD, gateways consume.

Each stream entry carries one msgpack-encoded batch in its ``events`` field (the HTTP batch format).
Gateways read with a consumer group, so each entry is folded into exactly one gateway's store
(shard vehicles across streams to give each gateway its own fleet), and acknowledge an entry only
after its events are in the store: entries a crashed consumer read but never acknowledged are
read again from its pending list when it restarts under the same name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgpack
import redis.asyncio as redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

EVENTS_FIELD = b"events"
BLOCK_MS = 500
READ_COUNT = 64


async def publish(client: redis.Redis, stream: str, events: list[dict[str, Any]], *, maxlen: int = 100_000) -> bytes:
    """Append one batch of events to ``stream`` (trimmed to about ``maxlen`` entries)."""
    entry_id = await client.xadd(stream, {EVENTS_FIELD: msgpack.packb(events)}, maxlen=maxlen, approximate=True)
    return entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()


class StreamConsumer:
    """Reads batches with XREADGROUP, hands each to ``handle``, then XACKs it."""

    def __init__(
        self, client: redis.Redis, stream: str, group: str, consumer: str, handle: Callable[[list[Any]], object]
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handle = handle
        self.batches = 0
        self.failures = 0

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):  # the group exists: another gateway made it first
                raise

    async def run(self) -> None:
        """1 create the group, 2 re-read this consumer's pending entries, 3 read new ones forever."""
        await self.ensure_group()
        await self._drain("0")
        while True:
            await self._drain(">")

    async def _drain(self, start: str) -> None:
        while True:
            replies: Any = await self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: start},
                count=READ_COUNT,
                block=BLOCK_MS if start == ">" else None,
            )
            entries: list[tuple[bytes, dict[bytes, bytes]]] = [
                (entry_id, fields) for _, stream_entries in replies or [] for entry_id, fields in stream_entries
            ]
            if not entries:
                return
            for entry_id, fields in entries:
                self._handle_entry(entry_id, fields)
            await self.client.xack(self.stream, self.group, *(entry_id for entry_id, _ in entries))
            if start == ">":
                return

    def _handle_entry(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            events = msgpack.unpackb(fields[EVENTS_FIELD], raw=False)
            if not isinstance(events, list):
                raise ValueError("the events field is not a msgpack list")
            self.handle(events)
            self.batches += 1
        except (KeyError, ValueError, msgpack.UnpackException) as error:
            # A poison entry is acknowledged and logged, never retried forever.
            self.failures += 1
            log.warning("telemetry stream %s entry %s dropped: %s", self.stream, entry_id.decode(), error)


async def run_forever(consumer: StreamConsumer, retry_s: float = 1.0) -> None:
    """The consumer task: a lost Redis connection is retried, not fatal to the gateway."""
    while True:
        try:
            await consumer.run()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            log.warning("telemetry stream %s: %s; retrying in %.0f s", consumer.stream, error, retry_s)
            await asyncio.sleep(retry_s)
