"""Group commit of step transitions: the advances of many jobs written in one transaction.

A worker runs up to ``concurrency`` jobs at once and each of them records every step boundary
(steps done, failed or compensated, the next ones started, the job's own change) through
``JobStore.advance``. One transaction per boundary made the database round trip, not the steps, the
limit: about 80 three-step jobs/s. Here an advance is queued and the one committer task writes
everything queued in one transaction, with one fence statement for all the jobs and one
``executemany`` per kind of row. While a transaction is in flight the next group gathers, so a lone
advance waits for nothing (no timer) and a busy worker commits dozens per round trip.

The guarantees are the per-job ones of before: the fence (an UPDATE guarded by the claim's lease
token) runs in the same transaction as the job's writes and a job whose lease was taken over gets
``LeaseLost`` and writes nothing; a group that fails as a whole (one job's output the database
refuses, say) is retried one advance at a time, so the bad one fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from strata.workflows.records import Advanced, Claim, JobChange, LeaseLost, StepDone, StepFailed, StepStatus

log = logging.getLogger(__name__)

MAX_GROUP = 256  # advances per transaction: bounds one statement's parameters and one commit's size


@dataclass(slots=True)
class Advance:
    """One job's step boundary, as ``JobStore.advance`` was asked to record it."""

    claim: Claim
    lease_until: float
    done: Sequence[StepDone]
    failed: Sequence[StepFailed]
    start: Sequence[str]
    compensated: Sequence[str]
    job: JobChange | None
    result: asyncio.Future[Advanced]


@dataclass(frozen=True, slots=True)
class Tables:
    jobs: Table
    steps: Table
    events: Table


# Writes of the rows the group touches. ``add_artifacts`` is the store's (rare: only steps that
# produce artifacts), ``job_values`` turns a JobChange into column values.
AddArtifacts = Callable[[AsyncSession, Claim, StepDone, float], Any]
JobValues = Callable[[JobChange, float], dict[str, Any]]
JobEvent = Callable[[JobChange], tuple[str, None, dict[str, Any] | None]]


class GroupCommitter:
    """Queues advances and commits them in groups; ``submit`` returns when its group committed."""

    def __init__(
        self,
        tables: Tables,
        writing: Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]],
        *,
        add_artifacts: AddArtifacts,
        job_values: JobValues,
        job_event: JobEvent,
        committed: Callable[[str], None],
    ) -> None:
        self._tables = tables
        self._writing = writing
        self._add_artifacts = add_artifacts
        self._job_values = job_values
        self._job_event = job_event
        self._committed = committed
        self._queue: list[Advance] = []
        self._committer: asyncio.Task[None] | None = None
        self.groups = 0  # transactions committed (tests and benchmarks read the group sizes from these)
        self.advances = 0

    async def submit(self, advance: Advance) -> Advanced:
        self._queue.append(advance)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued(), name="workflow-group-commit")
        return await advance.result

    async def _commit_queued(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                await self._commit(group)
            except Exception as error:  # a boundary: the group is retried, each advance in its own transaction
                if len(group) == 1:
                    _settle(group[0], error)
                    continue
                log.warning("a group of %d job advances failed; retrying them one by one", len(group), exc_info=True)
                for advance in group:
                    try:
                        await self._commit([advance])
                    except Exception as alone:
                        _settle(advance, alone)

    async def _commit(self, group: list[Advance]) -> None:
        now = time.time()
        async with self._writing() as session:
            held = await self._fence(session, group)
            results = await self._write(session, [a for a in group if a.claim.job.id in held], held, now)
        self.groups += 1
        self.advances += len(group)
        for advance in group:
            job_id = advance.claim.job.id
            if advance.result.done():  # its waiter was cancelled (a stopping worker): nothing to tell
                continue
            if job_id in results:
                advance.result.set_result(results[job_id])
            else:
                advance.result.set_exception(LeaseLost(job_id))
        for job_id in results:
            self._committed(job_id)

    async def _fence(self, session: AsyncSession, group: list[Advance]) -> dict[str, bool]:
        """Renew the lease of every job in the group still held with its claim's token, in one
        statement: job id -> whether a cancel was asked. A job missing from the answer is lost."""
        jobs = self._tables.jobs
        statement = (
            update(jobs)
            .where(tuple_(jobs.c.id, jobs.c.lease_token).in_([(a.claim.job.id, a.claim.token) for a in group]))
            .values(available_at=max(a.lease_until for a in group))
            .returning(jobs.c.id, jobs.c.cancel_requested)
        )
        return {str(job_id): bool(cancel) for job_id, cancel in (await session.execute(statement)).all()}

    async def _write(
        self, session: AsyncSession, group: list[Advance], held: dict[str, bool], now: float
    ) -> dict[str, Advanced]:
        rows = _Rows()
        results: dict[str, Advanced] = {}
        for advance in group:
            job_id = advance.claim.job.id
            start, job = advance.start, advance.job
            if held[job_id] and start:  # a cancel was asked: stop at this step boundary, the caller compensates
                start, job = (), None
            for step in advance.done:
                rows.succeeded.append({"b_job": job_id, "b_name": step.name, "status": StepStatus.SUCCEEDED.value,
                                       "output": step.output, "error": None, "finished_at": now})  # fmt: skip
                rows.event(job_id, now, "step_succeeded", step.name)
                if step.artifacts:
                    await self._add_artifacts(session, advance.claim, step, now)
            for failure in advance.failed:
                status = StepStatus.FAILED if failure.final else StepStatus.PENDING  # pending: a retry follows
                rows.failed.append({"b_job": job_id, "b_name": failure.name, "status": status.value,
                                    "error": failure.error, "finished_at": now})  # fmt: skip
                rows.event(job_id, now, "step_failed", failure.name,
                           {"error": failure.error, "retry_in_s": failure.retry_in_s})  # fmt: skip
            for name in advance.compensated:
                rows.compensated.append({"b_job": job_id, "b_name": name})
                rows.event(job_id, now, "step_compensated", name)
            attempts = {name: advance.claim.steps[name].attempts + 1 for name in start}
            for name in start:
                rows.started.append({"b_job": job_id, "b_name": name})
                rows.event(job_id, now, "step_started", name, {"attempt": attempts[name]})
            if job is not None:
                kind, _, detail = self._job_event(job)
                rows.event(job_id, now, kind, None, detail)
                values = self._job_values(job, now)
                rows.jobs.setdefault(tuple(sorted(values)), []).append({"b_job": job_id, **values})
            results[job_id] = Advanced(held[job_id], attempts)
        await rows.execute(session, self._tables, now)
        return results


class _Rows:
    """The group's writes, gathered by statement so each kind is one ``executemany``."""

    def __init__(self) -> None:
        self.succeeded: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.compensated: list[dict[str, Any]] = []
        self.started: list[dict[str, Any]] = []
        self.jobs: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns changed
        self.events: list[dict[str, Any]] = []

    def event(self, job_id: str, at: float, kind: str, step: str | None, detail: dict[str, Any] | None = None) -> None:
        self.events.append({"job_id": job_id, "at": at, "kind": kind, "step": step, "detail": detail})

    async def execute(self, session: AsyncSession, tables: Tables, now: float) -> None:
        steps, jobs = tables.steps, tables.jobs
        this_step = (steps.c.job_id == bindparam("b_job"), steps.c.name == bindparam("b_name"))
        if self.succeeded:
            await session.execute(update(steps).where(*this_step), self.succeeded)
        if self.failed:
            await session.execute(update(steps).where(*this_step), self.failed)
        if self.compensated:
            statement = update(steps).where(*this_step).values(status=StepStatus.COMPENSATED.value)
            await session.execute(statement, self.compensated)
        if self.started:
            statement = (
                update(steps)
                .where(*this_step)
                .values(
                    status=StepStatus.RUNNING.value, attempts=steps.c.attempts + 1, started_at=now, finished_at=None
                )
            )
            await session.execute(statement, self.started)
        for rows in self.jobs.values():
            await session.execute(update(jobs).where(jobs.c.id == bindparam("b_job")), rows)
        if self.events:
            await session.execute(insert(tables.events), self.events)


def _settle(advance: Advance, error: Exception) -> None:
    """The caller gets what the database said; the job's lease then runs out and it is retried."""
    if not advance.result.done():
        advance.result.set_exception(error)
