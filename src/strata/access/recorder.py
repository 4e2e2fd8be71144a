"""Usage and audit bookkeeping, kept off the request path.

On the event loop a finished request costs a dictionary update (usage, summed per tenant, key,
model and minute) and an append to a bounded buffer (its audit entry, a tuple: the row is built
later, see audit.InferenceEntry). Every ``interval_s`` the buffers are swapped out: the usage rows
go to the database's own thread (``Database.off_loop``: its own event loop and engine), the audit
entries to the chain writer (chain_writer.py: that thread, or by default a process of its own),
which builds the rows, chains their hashes and writes them in one bulk insert; between, every
``audit_batch_rows`` waiting audit entries are written the same way. The loop never waits on the
database or builds rows. The thread shares the interpreter with the loop, so what runs there is
kept small (the driver's own executemany, no ORM); the audit rows, the bulk of it, leave the
process.

The audit buffer is bounded: when a database stall fills it, further audit rows are counted as
dropped (``dropped_audit``, exported as a metric) and, once rows flow again, an ``audit.overflow``
alert row records how many were lost, so the trail itself says where it has a gap.

Denials are aggregated, not queued one by one: a refused request adds one to a counter keyed by
(action, status, reason, tenant, actor), and each flush writes one ``denial`` row per key with its
``count``. A flood of requests with random bad keys therefore costs a dictionary update each and a
row per flush, not a row each. The keys are bounded too (``max_denial_keys``): past that, new ones
are counted under the action ``*`` with their status and reason only.

Stored exchanges (what a tenant's data policy keeps, see exchanges.py) ride the same flushes: a
bounded list, sealed and inserted on the writer thread with the audit rows; a full list drops and
counts (``dropped_exchanges``).

Stopping flushes what is left: a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from strata.access import exchanges, usage
from strata.access.audit import AuditEvent, AuditSource
from strata.access.chain_writer import ChainWriter, ThreadChainWriter
from strata.access.exchanges import ExchangeEntry
from strata.access.keyring import KeyRing
from strata.access.usage import Totals, UsageKey
from strata.store import Database

log = logging.getLogger(__name__)

AfterFlush = Callable[[dict[str, Totals]], Awaitable[None]]
DenialKey = tuple[str, int, str | None, str | None, str | None]  # action, status, reason, tenant, actor
T = TypeVar("T")

DEFAULT_MAX_AUDIT_BUFFER = 100_000
DEFAULT_AUDIT_BATCH_ROWS = 1000
DEFAULT_MAX_DENIAL_KEYS = 256
ANY_ACTION = "*"  # the action denials are counted under once max_denial_keys distinct ones wait


UsageSums = dict[tuple[str, str | None, str, int, str | None], list[float]]
"""(tenant, key, model, minute, prompt template) -> [requests, tokens_in, tokens_out, compute_s, cost]."""


class Recorder:
    def __init__(
        self,
        database: Database,
        *,
        interval_s: float = 0.5,
        after_flush: AfterFlush | None = None,
        max_audit_buffer: int = DEFAULT_MAX_AUDIT_BUFFER,
        audit_batch_rows: int = DEFAULT_AUDIT_BATCH_ROWS,
        max_denial_keys: int = DEFAULT_MAX_DENIAL_KEYS,
        ring: KeyRing | None = None,
        max_exchange_buffer: int = 10_000,
        chain: ChainWriter | None = None,
    ) -> None:
        self.database = database
        # Appends the audit rows: the database thread by default, or a process (chain_writer.py).
        self.chain = chain if chain is not None else ThreadChainWriter(database)
        self.interval_s = interval_s
        self.after_flush = after_flush
        self.max_audit_buffer = max_audit_buffer
        self.audit_batch_rows = audit_batch_rows
        self.max_denial_keys = max_denial_keys
        self.dropped_audit = 0  # audit rows lost to a full buffer since start (a metric reads it)
        self._unreported_drops = 0
        self.ring = ring  # seals kept prompts and outputs (None: no policy keeps content)
        self.max_exchange_buffer = max_exchange_buffer
        self.dropped_exchanges = 0  # kept exchanges lost to a full buffer since start (a metric reads it)
        self._exchanges: list[ExchangeEntry] = []
        self._usage: UsageSums = {}
        self._audit: list[AuditSource] = []
        self._denials: dict[DenialKey, list[float]] = {}  # key -> [count, first seen (epoch s)]
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # set on stop, and when a batch of audit entries is waiting

    def usage(
        self,
        tenant: str,
        key_id: str | None,
        model: str,
        at: float,
        used: tuple[int, int, float, float],
        prompt: str | None = None,
        *,
        cached: bool = False,
    ) -> None:
        """Add one request's (tokens_in, tokens_out, compute_s, cost) to its minute's sum (per prompt
        template too: ``prompt`` is its id@version); ``cached``: it was answered from the response cache."""
        key = (tenant, key_id, model, int(at // 60) * 60, prompt)
        total = self._usage.get(key)
        if total is None:
            self._usage[key] = [1, *used, int(cached)]
        else:
            total[0] += 1
            total[1] += used[0]
            total[2] += used[1]
            total[3] += used[2]
            total[4] += used[3]
            total[5] += cached

    def audit(self, event: AuditSource) -> None:
        if len(self._audit) >= self.max_audit_buffer:
            self.dropped_audit += 1
            self._unreported_drops += 1
            return
        self._audit.append(event)
        if len(self._audit) == self.audit_batch_rows:
            self._wake.set()

    def keep(self, entry: ExchangeEntry) -> None:
        """Queue one stored exchange (sealed and written at the next flush)."""
        if len(self._exchanges) >= self.max_exchange_buffer:
            self.dropped_exchanges += 1
            return
        self._exchanges.append(entry)

    def deny(self, action: str, status: int, reason: str | None, tenant: str | None, actor: str | None) -> None:
        """Count one refused request; its row (with the count) is written at the next flush."""
        key: DenialKey = (action, status, reason, tenant, actor)
        seen = self._denials.get(key)
        if seen is None:
            if len(self._denials) >= self.max_denial_keys:  # bounded: the overflow keys are status x reason
                key = (ANY_ACTION, status, reason, None, None)
                seen = self._denials.get(key)
            if seen is None:
                self._denials[key] = seen = [0, time.time()]
        seen[0] += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="access-recorder")

    async def stop(self) -> None:
        # The loop is asked to stop, not cancelled: a flush cancelled mid-write would leave its write
        # transaction behind, and the final flush below would find the database locked.
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        try:
            await self.flush()
        finally:
            await self.chain.close()

    async def _loop(self) -> None:
        # 1. Every interval_s: everything (usage, audit, then the budgets' refresh).
        # 2. Between, each time audit_batch_rows entries wait: those entries alone. Under load the
        #    trail is written in small even batches instead of one large one per interval: a large
        #    batch holds the interpreter on the writer thread long enough to show in p99.
        full_at = time.monotonic() + self.interval_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, full_at - time.monotonic()))
            self._wake.clear()
            if self._stopping.is_set():
                return  # stop() writes what is left
            try:
                if time.monotonic() >= full_at:
                    full_at = time.monotonic() + self.interval_s
                    await self.flush()
                else:
                    await self.flush(with_usage=False)
            except Exception:  # the task loop is the boundary: rows stay buffered and are retried
                log.exception("could not write usage/audit rows; will retry")

    async def flush(self, *, with_usage: bool = True) -> None:
        """Write what waits; ``with_usage=False`` writes the audit entries only (usage and the budgets'
        refresh wait for the next full flush)."""
        async with self._lock:  # one writer per gateway keeps the audit order
            sums: UsageSums = {}
            if with_usage:
                sums, self._usage = self._usage, {}
            denials, self._denials = self._denials, {}
            sources, self._audit = [*_denial_events(denials), *self._audit], []
            drops, self._unreported_drops = self._unreported_drops, 0
            kept, self._exchanges = self._exchanges, []
            rows = {UsageKey(*key): _totals(total) for key, total in sums.items()}
            try:
                await self._write_tables(rows, kept)
            except BaseException:
                self._merge_back(sums, sources, drops)
                self._exchanges = kept + self._exchanges
                raise
            # Usage is written now: a failed append puts back the audit entries alone, and the budgets
            # still hear of the usage (written once, counted once).
            failed: Exception | None = None
            try:
                await self._append(sources, drops)
            except BaseException as error:
                self._merge_back({}, sources, drops)
                if not isinstance(error, Exception):  # cancelled: no budget refresh, just leave
                    raise
                failed = error
            if self.after_flush is not None and rows:
                written: dict[str, Totals] = {}
                for key, total in rows.items():
                    written[key.tenant] = written.get(key.tenant, Totals()).plus(total)
                await self.after_flush(written)
            if failed is not None:
                raise failed

    async def _write_tables(self, rows: dict[UsageKey, Totals], kept: list[ExchangeEntry]) -> None:
        if rows or kept:
            ring = self.ring
            await self.database.off_loop(lambda database: _write_tables(database, rows, kept, ring))

    async def _append(self, sources: list[AuditSource], drops: int) -> None:
        if drops:
            message = f"{drops} audit rows were dropped: the audit buffer was full (database too slow)"
            overflow = AuditEvent("alert", "audit.overflow", 200, detail={"dropped": drops, "message": message})
            sources = [*sources, overflow]
        if sources:
            await self.chain.append(sources)

    def _merge_back(self, sums: UsageSums, sources: list[AuditSource],
                    drops: int) -> None:  # fmt: skip
        for key, total in self._usage.items():  # what arrived during the failed write
            mine = sums.setdefault(key, [0, 0, 0, 0.0, 0.0, 0])
            for index, value in enumerate(total):
                mine[index] += value
        self._usage = sums
        self._audit = sources + self._audit
        self._unreported_drops += drops


def _totals(s: list[float]) -> Totals:
    return Totals(int(s[0]), int(s[1]), int(s[2]), s[3], s[4], int(s[5]))


def _denial_events(denials: dict[DenialKey, list[float]]) -> list[AuditEvent]:
    return [
        AuditEvent("denial", action, status, tenant, actor, {"reason": reason, "count": int(count)},
                   at=datetime.fromtimestamp(first, UTC))
        for (action, status, reason, tenant, actor), (count, first) in denials.items()
    ]  # fmt: skip


async def _write_tables(database: Database, rows: dict[UsageKey, Totals], kept: list[ExchangeEntry],
                        ring: KeyRing | None) -> None:  # fmt: skip
    """Runs on the database thread: usage rows, then stored exchanges (the audit chain is the chain writer's)."""
    await usage.write(database, rows)
    await exchanges.write(database, ring, kept)
