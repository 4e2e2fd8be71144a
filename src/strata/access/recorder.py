"""Buffers usage rows and audit events, and writes them in the background so requests never wait on
the database. Stopping flushes what is left: a graceful shutdown loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from strata.access import audit, usage
from strata.access.audit import AuditEvent
from strata.access.usage import Totals, Usage
from strata.store import Database

log = logging.getLogger(__name__)

AfterFlush = Callable[[dict[str, Totals]], Awaitable[None]]


class Recorder:
    def __init__(self, database: Database, *, interval_s: float = 0.5, after_flush: AfterFlush | None = None) -> None:
        self.database = database
        self.interval_s = interval_s
        self.after_flush = after_flush
        self._usage: list[tuple[Usage, float]] = []
        self._audit: list[AuditEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def usage(self, record: Usage, cost: float) -> None:
        self._usage.append((record, cost))

    def audit(self, event: AuditEvent) -> None:
        self._audit.append(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="access-recorder")

    async def stop(self) -> None:
        # The loop is asked to stop, not cancelled: a flush cancelled mid-write leaves its SQLite write
        # transaction behind in the driver's thread, and the final flush below then finds the database
        # locked and loses the rows (seen under load at shutdown).
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return  # stop() writes what is left
            try:
                await self.flush()
            except Exception:  # the task loop is the boundary: rows stay buffered and are retried
                log.exception("could not write usage/audit rows; will retry")

    async def flush(self) -> None:
        async with self._lock:  # one writer per gateway keeps the audit order
            rows, events = self._usage, self._audit
            self._usage, self._audit = [], []
            try:
                await usage.write(self.database, rows)
            except BaseException:
                self._usage = rows + self._usage
                self._audit = events + self._audit
                raise
            try:
                await audit.append(self.database, events)
            except BaseException:
                self._audit = events + self._audit
                raise
            if self.after_flush is not None:
                written: dict[str, Totals] = {}
                for record, cost in rows:
                    one = Totals(1, record.tokens_in, record.tokens_out, record.compute_s, cost)
                    written[record.tenant] = written.get(record.tenant, Totals()).plus(one)
                await self.after_flush(written)
