"""All SQL of the workflow engine: submit, claim with a lease, advance steps, heartbeat, cancel.

Every write a worker makes about a job it holds starts with the *fence*: an UPDATE of the job row
guarded by the lease token the claim handed out. A worker whose lease expired and was taken over
finds no row to update and stops (LeaseLost) before it changes anything, so only the current
holder ever records a step's completion. The same statement renews the lease.

Claiming is one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``:
on PostgreSQL concurrent workers skip each other's rows instead of queueing on them; on SQLite
(which ignores FOR UPDATE) the single statement takes the write lock at once, so two processes
never both read a candidate and then race to upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from functools import partial
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from strata.store import Database
from strata.workflows.group_commit import Advance, GroupCommitter, Tables
from strata.workflows.notify import announce
from strata.workflows.records import (
    Advanced,
    Claim,
    FirstSteps,
    JobChange,
    JobState,
    JobStatus,
    LeaseLost,
    NewJob,
    StepDone,
    StepFailed,
    StepState,
    StepStatus,
)
from strata.workflows.tables import ACTIVE, Artifact, Event, Job, Step

# Core tables, not ORM entities, in the hot statements: no ORM bookkeeping on each execution.
JOBS = cast(Table, Job.__table__)
STEPS = cast(Table, Step.__table__)
EVENTS = cast(Table, Event.__table__)


def _job(row: Any) -> JobState:
    """A job row as its record: the states as enums (the database holds their values)."""
    values = {name: getattr(row, name) for name in JobState.__dataclass_fields__}
    values["status"] = JobStatus(values["status"])
    if values["outcome"] is not None:
        values["outcome"] = JobStatus(values["outcome"])
    return JobState(**values)


def _step(row: Any) -> StepState:
    values = {name: getattr(row, name) for name in StepState.__dataclass_fields__}
    values["status"] = StepStatus(values["status"])
    return StepState(**values)


_JOB_COLUMNS = [JOBS.c[name] for name in JobState.__dataclass_fields__]


class JobStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        # Called with a job id after each committed change made through this store (this process):
        # progress streams wake at once for jobs run here, and poll for jobs run elsewhere.
        self.listeners: list[Callable[[str], None]] = []
        # SQLite has one writer at a time: writers of one process queue here, on the event loop,
        # instead of in SQLite's busy handler, which sleeps in steps of up to 100 ms.
        self._write_lock = asyncio.Lock() if database.dialect == "sqlite" else None
        self._commits = GroupCommitter(
            Tables(JOBS, STEPS, EVENTS),
            self.writing,
            add_artifacts=_add_artifacts,
            job_values=_job_values,
            job_event=_change_job_event,
            committed=self._changed,
        )

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session for a write transaction (queued behind this process's other writers on SQLite)."""
        if self._write_lock is None:
            async with self.database.session() as session:
                yield session
            return
        async with self._write_lock, self.database.session() as session:
            yield session

    def _changed(self, job_id: str) -> None:
        for listener in self.listeners:
            listener(job_id)

    # -- submitting and reading -------------------------------------------------------------------

    async def submit(self, new: NewJob) -> tuple[JobState, bool]:
        """Insert the job and its steps; with an idempotency key already used by this tenant,
        the existing job instead (created False)."""
        now = time.time()
        job_id = new.job_id or f"job_{secrets.token_hex(12)}"
        values = {"id": job_id, "tenant": new.tenant, "key_id": new.key_id, "pipeline": new.pipeline,
                  "input": new.input, "priority": new.priority, "idempotency_key": new.idempotency_key,
                  "request_hash": new.request_hash, "status": JobStatus.QUEUED, "outcome": None,
                  "cancel_requested": False, "error": None, "result": None, "created_at": now, "started_at": None,
                  "finished_at": None, "available_at": now, "lease_owner": None, "lease_token": None}  # fmt: skip
        steps = [
            {"job_id": job_id, "name": name, "position": index, "status": StepStatus.PENDING, "attempts": 0}
            for index, name in enumerate(new.steps)
        ]
        try:
            async with self.writing() as session:
                await session.execute(insert(JOBS).values(values))
                await session.execute(insert(STEPS), steps)
                await _event(session, job_id, "queued", None, {"pipeline": new.pipeline}, now)
                if self.database.dialect == "postgresql":
                    await announce(session, new.pipeline)
        except IntegrityError:
            if new.idempotency_key is None:
                raise
            existing = await self.by_idempotency_key(new.tenant, new.idempotency_key)
            if existing is None:  # the clash was not the key: report the original error
                raise
            return existing, False
        self._changed(job_id)
        return _job(_Row(values)), True

    async def by_idempotency_key(self, tenant: str, key: str) -> JobState | None:
        async with self.database.session() as session:
            query = select(*_JOB_COLUMNS).where(JOBS.c.tenant == tenant, JOBS.c.idempotency_key == key)
            row = (await session.execute(query)).one_or_none()
        return None if row is None else _job(row)

    async def get(self, tenant: str, job_id: str) -> JobState | None:
        """The job if ``tenant`` owns it; None for another tenant's job and a missing one alike."""
        async with self.database.session() as session:
            query = select(*_JOB_COLUMNS).where(JOBS.c.id == job_id, JOBS.c.tenant == tenant)
            row = (await session.execute(query)).one_or_none()
        return None if row is None else _job(row)

    async def list_jobs(
        self, tenant: str, *, limit: int, pipeline: str | None = None, exclude: str | None = None
    ) -> list[JobState]:
        query = select(*_JOB_COLUMNS).where(JOBS.c.tenant == tenant)
        if pipeline is not None:
            query = query.where(JOBS.c.pipeline == pipeline)
        if exclude is not None:
            query = query.where(JOBS.c.pipeline != exclude)
        async with self.database.session() as session:
            rows = (await session.execute(query.order_by(JOBS.c.created_at.desc()).limit(limit))).all()
        return [_job(row) for row in rows]

    async def status_counts(self, tenant: str) -> dict[JobStatus, int]:
        query = select(JOBS.c.status, func.count()).where(JOBS.c.tenant == tenant).group_by(JOBS.c.status)
        async with self.database.session() as session:
            return {JobStatus(status): int(count) for status, count in (await session.execute(query)).all()}

    async def status_counts_all(self) -> dict[tuple[str, JobStatus], int]:
        """Jobs per (pipeline, status) across every tenant: the operators' view (admin dashboard)."""
        query = select(JOBS.c.pipeline, JOBS.c.status, func.count()).group_by(JOBS.c.pipeline, JOBS.c.status)
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return {(pipeline, JobStatus(status)): int(count) for pipeline, status, count in rows}

    async def dead_letters(self, *, limit: int) -> list[JobState]:
        """The most recently failed jobs of every tenant, newest first."""
        query = (
            select(*_JOB_COLUMNS)
            .where(JOBS.c.status == JobStatus.DEAD_LETTER)
            .order_by(JOBS.c.finished_at.desc())
            .limit(limit)
        )
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return [_job(row) for row in rows]

    async def state_counts(self) -> dict[JobStatus, int]:
        """Jobs by state across every tenant (the worker's queue-depth metric)."""
        counts: dict[JobStatus, int] = {}
        for (_, status), count in (await self.status_counts_all()).items():
            counts[status] = counts.get(status, 0) + count
        return counts

    async def steps(self, job_id: str) -> list[StepState]:
        async with self.database.session() as session:
            return await _steps(session, job_id)

    async def events_after(
        self, job_id: str, after: int, *, limit: int = 200
    ) -> list[tuple[int, str, str | None, Any, float]]:
        query = (
            select(Event.id, Event.kind, Event.step, Event.detail, Event.at)
            .where(Event.job_id == job_id, Event.id > after)
            .order_by(Event.id)
            .limit(limit)
        )
        async with self.database.session() as session:
            return [tuple(row) for row in (await session.execute(query)).all()]

    async def artifacts(self, job_id: str) -> list[Artifact]:
        async with self.database.session() as session:
            query = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.created_at)
            return list((await session.scalars(query)).all())

    # -- workers ----------------------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        lease_s: float,
        pipelines: Collection[str],
        *,
        limit: int = 1,
        first_steps: FirstSteps | None = None,
        held: Collection[str] = (),
        known_busy: bool = False,
    ) -> list[Claim]:
        """Take up to ``limit`` of the most urgent free jobs (queued and due, or whose holder's lease
        ran out) in one statement. They share one lease token: the fence is per (job, token).
        ``first_steps`` names the steps to start in the same transaction (one fewer per job). ``held``:
        jobs the caller runs now, never taken back by it even if a late heartbeat let their lease run
        out (the fence stops the late holder's writes; running the step twice here would be waste).
        ``known_busy``: the last claim was full, so skip the idle check and claim at once."""
        if not pipelines or limit < 1:
            return []
        now = time.time()
        token = secrets.token_hex(16)
        due: tuple[ColumnElement[bool], ...] = (
            JOBS.c.status.in_(ACTIVE),
            JOBS.c.available_at <= now,
            JOBS.c.pipeline.in_(list(pipelines)),
        )
        if held:
            due += (JOBS.c.id.not_in(list(held)),)
        candidates = (
            select(JOBS.c.id)
            .where(*due)
            .order_by(JOBS.c.priority.desc(), JOBS.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(JOBS)
            .where(JOBS.c.id.in_(candidates.scalar_subquery()))
            .values(
                lease_owner=owner,
                lease_token=token,
                available_at=now + lease_s,
                # .value: a bare enum in a CASE would be bound untyped (a column comparison takes the column's type)
                status=case((JOBS.c.status == JobStatus.QUEUED, JobStatus.RUNNING.value), else_=JOBS.c.status),
                started_at=func.coalesce(JOBS.c.started_at, now),
            )
            .returning(*_JOB_COLUMNS)
        )
        # An idle poll reads only (no write lock, no row locks), on the database's own thread: polling
        # workers in a gateway cost its request loop nothing while there is no work.
        idle_check = partial(_any_due, pipelines=tuple(pipelines), now=now, held=tuple(held))
        if not known_busy and not await self.database.off_loop(idle_check):
            return []
        async with self.writing() as session:
            jobs = [_job(row) for row in (await session.execute(statement)).all()]
            if not jobs:
                return []
            query = select(Step).where(STEPS.c.job_id.in_([job.id for job in jobs])).order_by(STEPS.c.position)
            steps: dict[str, dict[str, StepState]] = {job.id: {} for job in jobs}
            for row in (await session.scalars(query)).all():
                steps[row.job_id][row.name] = _step(row)
            started: dict[str, tuple[str, ...]] = {}
            events: list[dict[str, Any]] = []
            for job in jobs:
                in_flight = [name for name, step in steps[job.id].items() if step.status == StepStatus.RUNNING]
                if in_flight:  # the previous holder died or stalled mid-step: its lease expired
                    events.append(_event_row(job.id, now, "reclaimed", None, {"in_flight": in_flight}))
                if first_steps is not None and job.status == JobStatus.RUNNING and not job.cancel_requested:
                    started[job.id] = tuple(first_steps(job, steps[job.id]))
            await _start_steps(session, started, steps, now, events)
        jobs.sort(key=lambda job: (-job.priority, job.created_at))
        return [Claim(job, owner, token, steps[job.id], started.get(job.id, ())) for job in jobs]

    async def advance(
        self,
        claim: Claim,
        lease_s: float,
        *,
        done: Sequence[StepDone] = (),
        failed: Sequence[StepFailed] = (),
        start: Sequence[str] = (),
        compensated: Sequence[str] = (),
        job: JobChange | None = None,
    ) -> Advanced:
        """Record finished and failed steps, start the next ones, change the job: one transaction,
        shared with the other jobs' advances queued meanwhile (see group_commit)."""
        future: asyncio.Future[Advanced] = asyncio.get_running_loop().create_future()
        return await self._commits.submit(
            Advance(claim, time.time() + lease_s, done, failed, start, compensated, job, future)
        )

    async def release(self, claim: Claim) -> None:
        """Give the job up now (a stopping worker): another worker may claim it at once."""
        async with self.writing() as session:
            await _fence(session, claim, time.time())
            statement = update(JOBS).where(JOBS.c.id == claim.job.id).values(lease_owner=None, lease_token=None)
            await session.execute(statement)
            await _event(session, claim.job.id, "released", None, {"worker": claim.owner}, time.time())
            if self.database.dialect == "postgresql":
                await announce(session, claim.job.pipeline)

    async def heartbeat(self, claims: Collection[Claim], lease_s: float) -> dict[str, bool]:
        """Renew the leases still held: each job still held by this worker -> whether a cancel was asked."""
        if not claims:
            return {}
        statement = (
            update(JOBS)
            .where(JOBS.c.id.in_([c.job.id for c in claims]), JOBS.c.lease_token.in_({c.token for c in claims}))
            .values(available_at=time.time() + lease_s)
            .returning(JOBS.c.id, JOBS.c.cancel_requested)
        )
        async with self.writing() as session:
            return {str(job_id): bool(cancel) for job_id, cancel in (await session.execute(statement)).all()}

    # -- cancelling -------------------------------------------------------------------------------

    async def request_cancel(self, tenant: str, job_id: str) -> JobState | None:
        """Ask for the job to stop. A held job is stopped by its worker at the next step boundary; a
        job nobody holds is cancelled here, or handed to compensation if some steps already ran."""
        now = time.time()
        async with self.writing() as session:
            statement = (
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.tenant == tenant, JOBS.c.status.in_(ACTIVE))
                .values(cancel_requested=True)
                .returning(JOBS.c.status, JOBS.c.lease_token)
            )
            row = (await session.execute(statement)).one_or_none()
            if row is not None:
                await _event(session, job_id, "cancel_requested", None, None, now)
                if row.lease_token is None and row.status == JobStatus.QUEUED:
                    ran = await session.scalar(
                        select(func.count()).where(STEPS.c.job_id == job_id, STEPS.c.status == StepStatus.SUCCEEDED)
                    )
                    values: dict[str, Any] = (
                        {"status": JobStatus.CANCELLED, "finished_at": now}
                        if not ran
                        else {"status": JobStatus.COMPENSATING, "outcome": JobStatus.CANCELLED, "available_at": now}
                    )
                    await session.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))
                    await _event(session, job_id, values["status"], None, None, now)
        self._changed(job_id)
        return await self.get(tenant, job_id)


class _Row:
    """Attribute access over the values a job was inserted with."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def _fence(session: AsyncSession, claim: Claim, lease_until: float) -> bool:
    statement = (
        update(JOBS)
        .where(JOBS.c.id == claim.job.id, JOBS.c.lease_token == claim.token)
        .values(available_at=lease_until)
        .returning(JOBS.c.cancel_requested)
    )
    cancel = (await session.execute(statement)).scalar_one_or_none()
    if cancel is None:
        raise LeaseLost(claim.job.id)
    return bool(cancel)


async def _start_steps(
    session: AsyncSession,
    names: dict[str, tuple[str, ...]],
    claimed: dict[str, dict[str, StepState]],
    now: float,
    events: list[dict[str, Any]],
) -> None:
    """Mark the claimed jobs' first steps running and count their attempts, with ``events``: one
    statement per kind of row for the whole claim. A step starts at most once per claim (a retry
    releases the job), so its attempt number is the claimed count plus one."""
    rows = [{"b_job": job_id, "b_name": name} for job_id, steps in names.items() for name in steps]
    if rows:
        statement = (
            update(STEPS)
            .where(STEPS.c.job_id == bindparam("b_job"), STEPS.c.name == bindparam("b_name"))
            .values(status=StepStatus.RUNNING.value, attempts=STEPS.c.attempts + 1, started_at=now, finished_at=None)
        )
        await session.execute(statement, rows)
    events += [_event_row(job_id, now, "step_started", name, {"attempt": claimed[job_id][name].attempts + 1})
               for job_id, steps in names.items() for name in steps]  # fmt: skip
    if events:
        await session.execute(insert(EVENTS), events)


def _job_values(change: JobChange, now: float) -> dict[str, Any]:
    values: dict[str, Any] = {"status": change.status}
    if change.result is not None:
        values["result"] = change.result
    if change.error is not None:
        values["error"] = change.error
    if change.outcome is not None:
        values["outcome"] = change.outcome
    if change.finished:
        values["finished_at"] = now
    if change.release_at is not None:
        values |= {"available_at": change.release_at, "lease_owner": None, "lease_token": None}
    return values


def _change_job_event(change: JobChange) -> tuple[str, None, dict[str, Any] | None]:
    detail = dict(change.detail)
    if change.error is not None:
        detail["error"] = change.error
    return change.event, None, detail or None


async def _add_artifacts(session: AsyncSession, claim: Claim, step: StepDone, now: float) -> None:
    if not step.artifacts:
        return
    existing = set((await session.scalars(select(Artifact.artifact_id).where(Artifact.job_id == claim.job.id))).all())
    rows = [
        {"job_id": claim.job.id, "artifact_id": a.artifact_id, "tenant": claim.job.tenant, "step": step.name,
         "bytes": a.bytes, "media_type": a.media_type, "created_at": now}
        for a in {a.artifact_id: a for a in step.artifacts}.values()
        if a.artifact_id not in existing
    ]  # fmt: skip
    if rows:
        await session.execute(insert(Artifact), rows)


async def _steps(session: AsyncSession, job_id: str) -> list[StepState]:
    query = select(Step).where(STEPS.c.job_id == job_id).order_by(STEPS.c.position)
    return [_step(row) for row in (await session.scalars(query)).all()]


def _event_row(job_id: str, at: float, kind: str, step: str | None, detail: dict[str, Any] | None) -> dict[str, Any]:
    return {"job_id": job_id, "at": at, "kind": kind, "step": step, "detail": detail}


async def _event(
    session: AsyncSession, job_id: str, kind: str, step: str | None, detail: dict[str, Any] | None, now: float
) -> None:
    await session.execute(insert(EVENTS).values(_event_row(job_id, now, kind, step, detail)))


async def _any_due(database: Database, *, pipelines: tuple[str, ...], now: float, held: tuple[str, ...]) -> bool:
    """Whether any job is free to claim: the same condition as the claim's, as plain SQL (an idle
    worker in a gateway asks this every poll_ms; see Database.fetch_one for why plain)."""
    statuses = [status.value for status in ACTIVE]
    sql = (
        f"SELECT 1 FROM {Job.__tablename__} WHERE status IN ({_marks(statuses)}) AND available_at <= ?"
        f" AND pipeline IN ({_marks(pipelines)})"
    )
    if held:
        sql += f" AND id NOT IN ({_marks(held)})"
    return await database.fetch_one(sql + " LIMIT 1", [*statuses, now, *pipelines, *held]) is not None


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))
