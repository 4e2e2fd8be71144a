"""Keeps the audit chain verified: a full walk at start, then every ``interval_s`` a walk of the rows
added since the last sound one, a full walk again every ``full_interval_s``, and whenever an admin
asks (``GET /v1/admin/audit/verify``, always full). The last verdict is what /metrics exports
(``strata_audit_chain_ok``) and the dashboard shows, so an alert fires on a broken chain without
anyone asking. The walk runs on the database's own thread, never on the request loop.

Why not a full walk each time: a trail grows by a row per inference, and a walk costs about 10 µs of
CPU a row - a few million rows are tens of seconds of the core the requests run on, and the thread's
hold on the interpreter shows in their latency. The scheduled walks are also paced (``pause``): a
long one takes at most a fifth of the database thread's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from strata.access import audit
from strata.access.audit import START, ChainPoint, Verdict
from strata.access.recorder import Recorder
from strata.lifetimes import task_running
from strata.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checked:
    verdict: Verdict
    at: float  # unix time the walk finished
    seconds: float  # how long it took


SCHEDULED_PAUSE = 4.0  # a scheduled walk sleeps 4x its working time between batches: at most 20% of the thread


class AuditWatch:
    def __init__(
        self, database: Database, recorder: Recorder, *, interval_s: float = 60.0, full_interval_s: float = 86_400.0
    ) -> None:
        self.database = database
        self.recorder = recorder
        self.interval_s = interval_s
        self.full_interval_s = full_interval_s
        self.last: Checked | None = None
        self.failures = 0  # walks that could not run (the database was unreachable)
        self._sound: ChainPoint | None = None  # where the last sound walk ended: the next one starts there
        self._lock = asyncio.Lock()  # one walk at a time: a second caller waits and reuses nothing stale

    async def verify(self, *, full: bool = True, pause: float = 0.0) -> Checked:
        """Flush what this gateway holds, walk the chain (all of it, or with ``full=False`` the rows
        after the last sound walk), keep the verdict."""
        async with self._lock:
            await self.recorder.flush()
            since = START if full or self._sound is None else self._sound
            started = time.perf_counter()
            verdict = await self.database.off_loop(lambda db: audit.verify(db, since=since, pause=pause))
            self.last = Checked(verdict, time.time(), time.perf_counter() - started)
            # A broken chain stays broken for every later walk: the next one walks it all again.
            self._sound = verdict.end if verdict.ok else None
            if not verdict.ok:
                log.error("the audit chain does not verify: %s", "; ".join(verdict.problems[:5]))
            return self.last

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return task_running(self._run, "audit-watch")

    async def _run(self) -> None:
        full_at = 0.0  # the first walk is full
        while True:
            full = time.monotonic() >= full_at
            try:
                await self.verify(full=full, pause=SCHEDULED_PAUSE)
                if full:
                    full_at = time.monotonic() + self.full_interval_s
            except Exception:  # boundary: an unreachable database is counted and retried next interval
                self.failures += 1
                log.exception("verifying the audit chain failed")
            await asyncio.sleep(self.interval_s)
