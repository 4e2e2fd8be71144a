"""Keeps the audit chain verified: a full walk at start and every ``interval_s``, and whenever an
admin asks (``GET /v1/admin/audit/verify``). The last verdict is what /metrics exports
(``strata_audit_chain_ok``) and the dashboard shows, so an alert fires on a broken chain without
anyone asking. The walk runs on the database's own thread, never on the request loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from strata.access import audit
from strata.access.audit import Verdict
from strata.access.recorder import Recorder
from strata.lifetimes import task_running
from strata.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checked:
    verdict: Verdict
    at: float  # unix time the walk finished
    seconds: float  # how long it took


class AuditWatch:
    def __init__(self, database: Database, recorder: Recorder, *, interval_s: float = 600.0) -> None:
        self.database = database
        self.recorder = recorder
        self.interval_s = interval_s
        self.last: Checked | None = None
        self.failures = 0  # walks that could not run (the database was unreachable)
        self._lock = asyncio.Lock()  # one walk at a time: a second caller waits and reuses nothing stale

    async def verify(self) -> Checked:
        """Flush what this gateway holds, walk the whole chain, keep the verdict."""
        async with self._lock:
            await self.recorder.flush()
            started = time.perf_counter()
            verdict = await self.database.off_loop(audit.verify)
            self.last = Checked(verdict, time.time(), time.perf_counter() - started)
            if not verdict.ok:
                log.error("the audit chain does not verify: %s", "; ".join(verdict.problems[:5]))
            return self.last

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return task_running(self._run, "audit-watch")

    async def _run(self) -> None:
        while True:
            try:
                await self.verify()
            except Exception:  # boundary: an unreachable database is counted and retried next interval
                self.failures += 1
                log.exception("verifying the audit chain failed")
            await asyncio.sleep(self.interval_s)
