"""Retention and rotation of stored exchanges: the scheduled purge and the rekey.

The purge is a gateway background task (not a workflow cron job: it must run wherever a gateway
keeps exchanges, also in apps with no workers): every ``purge_interval_s`` it deletes, per policy,
the rows older than its ``retention_days``, and appends one audit row per policy with the cutoff and
the count, in the same call on the database's own thread. Several gateways may purge at once: the
deletes are idempotent, and each run is audited as what it was.

The rekey re-seals rows under the active key in batches of ``batch_rows``, one transaction each;
it selects what is still under another key, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, func, select, update

from strata.access import audit
from strata.access.audit import AuditEvent
from strata.access.exchanges import TABLE, DataPolicies, associated_data
from strata.access.keyring import KeyRing
from strata.lifetimes import task_running
from strata.store import Database

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (rows done, rows in all)


async def purge(database: Database, policies: DataPolicies, now: datetime) -> list[AuditEvent]:
    """Delete every row past its tenant's retention; the audit rows of this run are appended and returned."""
    events: list[AuditEvent] = []
    explicit = list(policies.by_tenant)
    targets = [(p.tenant, p.retention_days) for p in policies.by_tenant.values()]
    if policies.default is not None:
        targets.append(("*", policies.default.retention_days))
    for tenant, days in targets:
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        which = TABLE.c.tenant == tenant if tenant != "*" else TABLE.c.tenant.not_in(explicit)
        async with database.connect() as connection:
            result = await connection.execute(delete(TABLE).where(and_(which, TABLE.c.at < cutoff)))
        deleted = result.rowcount or 0
        detail = {"policy_tenant": tenant, "cutoff": cutoff.isoformat(), "retention_days": days, "deleted": deleted}
        events.append(AuditEvent("admin", "data.purge", 200, None if tenant == "*" else tenant, "strata", detail))
    await audit.append(database, events)
    return events


async def rekey(database: Database, ring: KeyRing, *, batch_rows: int = 500, progress: Progress | None = None) -> int:
    """Re-seal every row under a non-active key with the active one; returns how many moved."""
    stale = and_(TABLE.c.key_id.is_not(None), TABLE.c.key_id != ring.active_id)
    async with database.connect() as connection:
        total = (await connection.execute(select(func.count()).select_from(TABLE).where(stale))).scalar_one()
    done, last = 0, 0
    while True:
        async with database.connect() as connection:  # one transaction per batch: a crash loses one batch's work
            query = select(TABLE.c.id, TABLE.c.tenant, TABLE.c.request_sha256, TABLE.c.key_id, TABLE.c.sealed)
            rows = (
                await connection.execute(query.where(stale, TABLE.c.id > last).order_by(TABLE.c.id).limit(batch_rows))
            ).all()
            if not rows:
                break
            for row_id, tenant, request_sha256, key_id, sealed in rows:
                bound = associated_data(tenant, request_sha256)
                new_id, resealed = ring.seal(ring.open(key_id, sealed, bound), bound)
                await connection.execute(
                    update(TABLE).where(TABLE.c.id == row_id).values(key_id=new_id, sealed=resealed)
                )
            last = rows[-1][0]
        done += len(rows)
        if progress is not None:
            progress(done, total)
    await audit.append(
        database, [AuditEvent("admin", "data.rekey", 200, None, "strata", {"rows": done, "key_id": ring.active_id})]
    )
    return done


class RetentionPurge:
    """Runs ``purge`` every ``interval_s`` on the database's thread, for the gateway's lifetime."""

    def __init__(self, database: Database, policies: DataPolicies, *, interval_s: float) -> None:
        self.database = database
        self.policies = policies
        self.interval_s = interval_s
        self.runs = 0
        self.failures = 0

    @property
    def needed(self) -> bool:
        return any(p.retention_days is not None for p in self.policies.spec.policies)

    async def run_once(self) -> list[AuditEvent]:
        now = datetime.now(UTC)
        events = await self.database.off_loop(lambda database: purge(database, self.policies, now))
        self.runs += 1
        return events

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return task_running(self._run if self.needed else None, "retention-purge")

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # boundary: an unreachable database is counted and retried next interval
                self.failures += 1
                log.exception("purging stored exchanges past their retention failed")
            await asyncio.sleep(self.interval_s)
