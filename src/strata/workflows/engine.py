"""The worker: claims jobs with a lease, runs their steps, persists each step's output with its state.

One job at a time per task, up to ``concurrency`` tasks:
1. claim a due job (a free one, or one whose holder's lease expired: that is how dead workers' jobs
   are reclaimed);
2. start the ready steps (attempt counted), run them, and in one transaction record their outputs
   and start the next ready ones;
3. a failed step is retried after a backoff (the job is released until then) or, at its last
   attempt, sends the job to compensation and then to dead letter with the reason;
4. a cancel request is honoured at the next step boundary, compensating what ran.
A heartbeat renews every held lease each third of ``lease_s``; a job whose lease was lost is
abandoned at once, and the fence in every write keeps a stale worker from recording anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from strata.observability.workflow_metrics import WorkflowMetrics
from strata.principal import Principal
from strata.record import RecordKind, RequestRecord
from strata.spec.pipelines import WorkflowsSpec
from strata.workflows.pipeline import Outcome, Pipeline, attempt, backoff_s
from strata.workflows.records import (
    Advanced,
    Claim,
    JobChange,
    JobState,
    JobStatus,
    LeaseLost,
    StepDone,
    StepFailed,
    StepState,
    StepStatus,
)
from strata.workflows.steps import Services, StepContext
from strata.workflows.store import JobStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Held:
    claim: Claim
    task: asyncio.Task[None]
    steps: list[asyncio.Future[Outcome]] = field(default_factory=list)  # the step attempts running now
    lost: bool = False
    cancel_requested: bool = False  # seen by heartbeat (or told in-process): long steps may stop early


class Worker:
    def __init__(
        self,
        store: JobStore,
        pipelines: dict[str, Pipeline],
        services: Services,
        settings: WorkflowsSpec,
        *,
        name: str | None = None,
        models_ready: Callable[[], bool] = lambda: True,
        rng: random.Random | None = None,
        metrics: WorkflowMetrics | None = None,
    ) -> None:
        self.store = store
        self.pipelines = pipelines
        self.services = services
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.models_ready = models_ready
        self.rng = rng or random.Random()
        self.metrics = metrics or WorkflowMetrics()
        self._held: dict[str, _Held] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"worker-{self.name}"),
            asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat-{self.name}"),
        ]

    def wake(self) -> None:
        """New work was submitted: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming and starting steps; let running steps finish for the grace period, then
        interrupt them and release their jobs so another worker takes them at once."""
        self._stopping = True
        self._wake.set()
        # The loops end on their own at their next turn: cancelling one inside a database call could
        # leave its connection mid-transaction. The claim loop first, so nothing is claimed after this.
        await asyncio.gather(*self._tasks[:1], return_exceptions=True)
        running = [held.task for held in self._held.values()]
        if running:
            await asyncio.wait(running, timeout=self.settings.shutdown_grace_s)
        left = list(self._held.values())
        for held in left:
            # Only the step attempts are interrupted, never a database write in progress: a write cut
            # off mid-transaction could leave its connection holding SQLite's write lock.
            for step in held.steps:
                step.cancel()
        await asyncio.gather(*(held.task for held in left), return_exceptions=True)
        for held in left:
            with contextlib.suppress(LeaseLost):
                await self.store.release(held.claim)
        self._stopped.set()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)

    def note_cancel(self, job_id: str) -> None:
        """A cancel was asked through this process: tell the step now, not at the next heartbeat."""
        held = self._held.get(job_id)
        if held is not None:
            held.cancel_requested = True

    def runnable(self) -> Collection[str]:
        ready = self.models_ready() and self.services.server is not None
        return [name for name, pipeline in self.pipelines.items() if ready or not pipeline.needs_models]

    # -- the loops --------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        busy = False  # the last claim took all it asked for: there is likely more
        while not self._stopping:
            self._wake.clear()
            try:
                free = self.settings.concurrency - len(self._held)
                if free > 0 and not self._stopping:
                    claims = await self.store.claim(
                        self.name,
                        self.settings.lease_s,
                        self.runnable(),
                        limit=free,
                        first_steps=self._first_steps,
                        held=list(self._held),
                        known_busy=busy,
                    )
                    busy = len(claims) == free
                    for claim in claims:
                        self._hold(claim)
            except Exception:  # the loop is a boundary: the database may be briefly away
                log.exception("worker %s could not claim a job; retrying", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_ms / 1000)

    def _hold(self, claim: Claim) -> None:
        self.metrics.claimed.labels(pipeline=claim.job.pipeline).inc()
        task = asyncio.create_task(self._run(claim), name=f"job-{claim.job.id}")
        self._held[claim.job.id] = _Held(claim, task)

        def finished(_: asyncio.Task[None]) -> None:
            self._held.pop(claim.job.id, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(finished)

    async def _heartbeat_loop(self) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.settings.lease_s / 3)
            if self._stopped.is_set():
                return
            try:
                alive = await self.store.heartbeat([held.claim for held in self._held.values()], self.settings.lease_s)
            except Exception:
                log.exception("worker %s could not renew its leases; retrying", self.name)
                continue
            for job_id, held in list(self._held.items()):
                held.cancel_requested = held.cancel_requested or alive.get(job_id, False)
                if job_id not in alive and not held.lost and self._held.get(job_id) is held:
                    # Finished jobs give their lease up before their task ends: only a held one is lost.
                    held.lost = True
                    log.info(
                        "worker %s: lease on job %s is gone (finished or taken over)", self.name, held.claim.job.id
                    )

    # -- one job ----------------------------------------------------------------------------------

    def _first_steps(self, job: JobState, steps: dict[str, StepState]) -> list[str]:
        return self.pipelines[job.pipeline].ready(_resumed(steps))

    async def _run(self, claim: Claim) -> None:
        try:
            job = claim.job
            if job.status == JobStatus.COMPENSATING or job.cancel_requested:
                outcome = job.outcome or JobStatus.CANCELLED
                outputs = {n: s.output for n, s in claim.steps.items() if s.status == StepStatus.SUCCEEDED}
                await self._compensate(claim, _statuses(claim), outputs, outcome, job.error)
            else:
                await self._execute(claim)
        except LeaseLost:
            self.metrics.leases_lost.labels(pipeline=claim.job.pipeline).inc()
            log.warning("worker %s: job %s was taken over by another worker", self.name, claim.job.id)
        except Exception:  # a boundary: the lease runs out and the job is retried elsewhere
            log.exception("worker %s failed while running job %s", self.name, claim.job.id)

    async def _execute(self, claim: Claim) -> None:
        pipeline = self.pipelines[claim.job.pipeline]
        status = _statuses(claim)
        outputs = {n: s.output for n, s in claim.steps.items() if s.status == StepStatus.SUCCEEDED}
        attempts = {n: s.attempts for n, s in claim.steps.items()}
        ready = pipeline.ready(status)
        if not ready:  # every step had finished when the previous holder died before the job did
            await self._succeed(claim, pipeline, outputs, [])
            return
        if claim.started == tuple(ready):  # the claim started them already
            advanced = Advanced(False, {name: attempts[name] + 1 for name in ready})
        else:
            advanced = await self.store.advance(claim, self.settings.lease_s, start=ready)
        while True:
            if advanced.cancel_requested and not advanced.attempts:
                await self._compensate(claim, status, outputs, JobStatus.CANCELLED, "cancelled by request")
                return
            attempts |= advanced.attempts
            outcomes = await self._attempts(claim, pipeline, ready, attempts, outputs)
            done = [StepDone(o.name, o.output, o.artifacts) for o in outcomes if o.error is None]
            for step in done:
                outputs[step.name], status[step.name] = step.output, StepStatus.SUCCEEDED
            failures = [o for o in outcomes if o.error is not None]
            if failures:
                await self._fail(claim, pipeline, status, outputs, attempts, done, failures)
                return
            ready = pipeline.ready(status)
            if not ready:
                await self._succeed(claim, pipeline, outputs, done)
                return
            if self._stopping:  # keep what finished; stop() releases the job to another worker
                await self.store.advance(claim, self.settings.lease_s, done=done)
                raise asyncio.CancelledError
            advanced = await self.store.advance(claim, self.settings.lease_s, done=done, start=ready)

    async def _attempts(
        self, claim: Claim, pipeline: Pipeline, ready: list[str], attempts: dict[str, int], outputs: dict[str, Any]
    ) -> list[Outcome]:
        held = self._held[claim.job.id]
        held.steps = [asyncio.ensure_future(self._attempt(claim, pipeline, n, attempts[n], outputs)) for n in ready]
        try:
            return list(await asyncio.gather(*held.steps))
        finally:
            held.steps = []

    async def _attempt(
        self, claim: Claim, pipeline: Pipeline, name: str, number: int, outputs: dict[str, Any]
    ) -> Outcome:
        job = claim.job
        bound = pipeline.steps[name]
        held = self._held[job.id]
        context = StepContext(job.id, job.tenant, job.key_id, bound.spec, number, job.input, outputs, self.services)
        context.cancel_requested = lambda: held.cancel_requested
        started, started_at = time.perf_counter(), time.time()
        outcome = await attempt(bound, pipeline.value_for(name, job.input, outputs), context)
        ended = time.perf_counter()
        self.metrics.step_seconds.labels(pipeline=job.pipeline).observe(ended - started)
        result = "succeeded" if outcome.error is None else "failed"
        self.metrics.attempts.labels(pipeline=job.pipeline, step=name, outcome=result).inc()
        if self.services.trace is not None:
            self.services.trace(job.id, _step_record(job, name, number, outcome, started, started_at, ended))
        return outcome

    async def _succeed(self, claim: Claim, pipeline: Pipeline, outputs: dict[str, Any], done: list[StepDone]) -> None:
        change = JobChange(
            JobStatus.SUCCEEDED, "succeeded", result=pipeline.result(outputs), finished=True, release_at=time.time()
        )
        await self.store.advance(claim, self.settings.lease_s, done=done, job=change)
        self.metrics.finished.labels(pipeline=claim.job.pipeline, status=JobStatus.SUCCEEDED).inc()

    async def _fail(
        self,
        claim: Claim,
        pipeline: Pipeline,
        status: dict[str, StepStatus],
        outputs: dict[str, Any],
        attempts: dict[str, int],
        done: list[StepDone],
        failures: list[Outcome],
    ) -> None:
        records, final_reason, delay = [], None, 0.0
        for failure in failures:
            assert failure.error is not None
            spec = pipeline.steps[failure.name].spec
            final = not failure.error.retryable or attempts[failure.name] >= spec.max_attempts
            retry_in = None if final else backoff_s(spec, attempts[failure.name], self.rng)
            records.append(StepFailed(failure.name, failure.error.message, final, retry_in))
            if final and final_reason is None:
                tries = attempts[failure.name]
                final_reason = f"step '{failure.name}' failed after {tries} attempt(s): {failure.error.message}"
            delay = max(delay, retry_in or 0.0)
        if final_reason is None:
            change = JobChange(
                JobStatus.QUEUED, "retry_scheduled", release_at=time.time() + delay, detail={"retry_in_s": delay}
            )
            await self.store.advance(claim, self.settings.lease_s, done=done, failed=records, job=change)
            return
        change = JobChange(JobStatus.COMPENSATING, "compensating", error=final_reason, outcome=JobStatus.DEAD_LETTER)
        await self.store.advance(claim, self.settings.lease_s, done=done, failed=records, job=change)
        for record in records:
            status[record.name] = StepStatus.FAILED if record.final else StepStatus.PENDING
        await self._compensate(claim, status, outputs, JobStatus.DEAD_LETTER, final_reason, announced=True)

    async def _compensate(
        self,
        claim: Claim,
        status: dict[str, StepStatus],
        outputs: dict[str, Any],
        outcome: JobStatus,
        reason: str | None,
        *,
        announced: bool = False,
    ) -> None:
        """Undo what the succeeded steps did, newest first, then settle the job as ``outcome``."""
        pipeline = self.pipelines[claim.job.pipeline]
        if not announced and claim.job.status != JobStatus.COMPENSATING:
            change = JobChange(JobStatus.COMPENSATING, "compensating", error=reason, outcome=outcome)
            await self.store.advance(claim, self.settings.lease_s, job=change)
        problems = []
        for name in reversed(pipeline.order):
            bound = pipeline.steps[name]
            if status.get(name) != StepStatus.SUCCEEDED or bound.compensate is None:
                continue
            job = claim.job
            context = StepContext(job.id, job.tenant, job.key_id, bound.spec, 1, job.input, outputs, self.services)
            if not await self._undo(bound.compensate, outputs.get(name), context):
                problems.append(name)
            await self.store.advance(claim, self.settings.lease_s, compensated=[name])
        error = reason or ("cancelled by request" if outcome == JobStatus.CANCELLED else None)
        if problems:
            error = f"{error}; compensation failed for {', '.join(problems)}"
        change = JobChange(outcome, outcome.value, error=error, finished=True, release_at=time.time())
        await self.store.advance(claim, self.settings.lease_s, job=change)
        self.metrics.finished.labels(pipeline=claim.job.pipeline, status=outcome).inc()

    async def _undo(self, compensate: Any, output: Any, context: StepContext) -> bool:
        spec = context.step
        for number in range(1, spec.max_attempts + 1):
            context.attempt = number
            try:
                await compensate(output, context)
                return True
            except Exception:  # a boundary: logged, retried, and named in the job's error at the end
                log.exception("compensation of step %s of job %s failed (try %d)", spec.name, context.job_id, number)
            if number < spec.max_attempts:
                await asyncio.sleep(backoff_s(spec, number, self.rng))
        return False


def _step_record(
    job: JobState, step: str, number: int, outcome: Outcome, started: float, started_at: float, ended: float
) -> RequestRecord:
    """One attempt of a step, as the record tracing reads (each attempt its own span: retries show)."""
    record = RequestRecord(
        "JOB", f"/v1/jobs/{job.id}/steps/{step}", route="/v1/jobs/{job_id}/steps/{step}", kind=RecordKind.JOB_STEP,
        caller=Principal(job.tenant, job.key_id, frozenset({"jobs"})), received=started, received_at=started_at,
        status=200 if outcome.error is None else 500, attempt=number, last_byte=ended,
    )  # fmt: skip
    if outcome.error is not None:
        record.error_code = "step_failed" if outcome.error.retryable else "step_failed_permanently"
    return record


def _resumed(steps: dict[str, StepState]) -> dict[str, StepStatus]:
    """Step states as a holder resumes them: a step left running by a dead holder runs again."""
    return {n: (StepStatus.PENDING if s.status == StepStatus.RUNNING else s.status) for n, s in steps.items()}


def _statuses(claim: Claim) -> dict[str, StepStatus]:
    return _resumed(claim.steps)
