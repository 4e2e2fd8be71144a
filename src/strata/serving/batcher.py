"""Dynamic batching: gather requests into one model call, the classic size/time gate.

A batch closes when it holds ``max_batch_size`` requests or when its first request has
waited ``max_wait_ms``, whichever comes first. Requests that arrive while the model is busy
wait in a bounded queue, so under load batches leave full and without extra waiting.

A cheap model (a call of microseconds) runs inline on the event loop instead of on its thread:
the hop to the thread and back would cost more than the call. With no wait configured and
nothing queued or running, a request's batch of one is formed and run at once in the caller's
own task - exactly the batch the loop would form, without two task switches. Each item carries
its request's record, stamped when it is queued, batched and run.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from strata.errors import ModelFailed, Overloaded, ReplicaUnavailable
from strata.observability.metrics import DeploymentMetrics
from strata.record import RequestRecord, current_record

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass(slots=True)
class _Pending:
    item: Any
    future: asyncio.Future[Any]
    record: RequestRecord | None
    enqueued_at: float = field(default_factory=time.perf_counter)


INLINE_STREAK = 16  # calls in a row under the threshold before 'auto' runs a model inline


class _InlinePolicy:
    """Whether the next model call runs on the event loop: always, never, or while calls stay cheap."""

    def __init__(self, mode: str, below_s: float) -> None:
        self.mode = mode
        self.below_s = below_s
        self.inline = mode == "always"
        self._streak = 0

    def measured(self, seconds: float) -> None:
        if self.mode != "auto":
            return
        if seconds >= self.below_s:  # one slow call sends the model back to its thread at once
            self._streak, self.inline = 0, False
            return
        self._streak += 1
        if self._streak >= INLINE_STREAK:
            self.inline = True


class DynamicBatcher:
    def __init__(
        self,
        fn: BatchFn,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        executor: Executor,
        metrics: DeploymentMetrics,
        name: str = "batcher",
        inline: str = "never",
        inline_below_us: float = 200.0,
    ) -> None:
        self._fn = fn
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        self._max_queue = max_queue
        self._executor = executor
        self._metrics = metrics
        self._name = name
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_model: list[_Pending] = []  # the batch the model is running now
        self._model_started_at: float | None = None
        self._inline = _InlinePolicy(inline, inline_below_us / 1e6)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def alive(self) -> bool:
        """The batching loop runs. It ends only when stopped or when the worker died under it."""
        return self._task is not None and not self._task.done()

    def stalled_s(self) -> float:
        """How long the model has been inside its current call (0 when idle): progress, or its absence."""
        return 0.0 if self._model_started_at is None else time.perf_counter() - self._model_started_at

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-loop")
        self._task.add_done_callback(self._on_loop_end)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_everything("the replica is shutting down")

    def _on_loop_end(self, task: asyncio.Task[None]) -> None:
        # The worker died (the model killed its thread, or a bug): nobody will serve what is queued.
        if not task.cancelled() and task.exception() is not None:
            self._fail_everything(f"{self._name}: the replica's worker died: {task.exception()!r}")

    def _fail_everything(self, message: str) -> None:
        """Queued and running requests fail as retryable: another replica can serve them."""
        for pending in [*self._in_model, *self._queue]:
            if not pending.future.done():
                pending.future.set_exception(ReplicaUnavailable(message))
        self._metrics.queue_depth.dec(len(self._queue))
        self._queue.clear()
        self._in_model = []

    async def submit(self, item: Any) -> Any:
        if self._task is not None and self._task.done():
            raise ReplicaUnavailable(f"{self._name}: the replica's worker died")
        if len(self._queue) >= self._max_queue:
            raise Overloaded(f"{self._name}: queue is full ({self._max_queue} waiting)")
        record = current_record.get()
        if self._inline.inline and self._max_wait_s == 0 and not self._queue and not self._in_model:
            return self._run_now(item, record)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = _Pending(item, future, record)
        if record is not None:
            record.queued = pending.enqueued_at
        self._queue.append(pending)
        self._metrics.queue_depth.inc()
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, formation_s = await self._form_batch()
            if not batch:
                continue
            self._metrics.batch_formation.observe(formation_s)
            self._metrics.batch_size.observe(len(batch))
            started = self._model_started_at = time.perf_counter()
            self._in_model = batch
            items = [p.item for p in batch]
            try:
                if self._inline.inline:
                    outputs, call_s = _timed(self._fn, items)
                else:
                    outputs, call_s = await loop.run_in_executor(self._executor, _timed, self._fn, items)
            except Exception as error:  # boundary: a model error fails this batch, not the replica
                self._fail(batch, error)
                continue
            finally:
                ended = time.perf_counter()
                self._metrics.inference.observe(ended - started)
                self._model_started_at = None
                _stamp(batch, started, ended)
            self._inline.measured(call_s)  # the call alone: a thread hop must not count against the model
            self._in_model = []
            self._deliver(batch, outputs)

    def _run_now(self, item: Any, record: RequestRecord | None) -> Any:
        """A batch of one, formed and run at once in the caller's task (inline model, no gate, idle)."""
        started = time.perf_counter()
        self._metrics.batch_size.observe(1)
        try:
            outputs = self._fn([item])
        except ModelFailed:
            raise
        except Exception as error:  # boundary: the model's error is this request's, not the replica's
            raise ModelFailed(f"{self._name}: model raised {error!r}") from error
        finally:
            ended = time.perf_counter()
            self._metrics.inference.observe(ended - started)
            self._inline.measured(ended - started)
            if record is not None:
                record.queued = record.batch_formed = record.inference_started = started
                record.inference_ended, record.batch_size = ended, 1
        if len(outputs) != 1:
            raise ModelFailed(f"{self._name}: model returned {len(outputs)} outputs for 1 input")
        return outputs[0]

    async def _form_batch(self) -> tuple[list[_Pending], float]:
        # 1. Sleep until the first request arrives.
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        started = time.perf_counter()
        # 2. Hold the gate until the batch is full or its oldest request has waited max_wait_ms.
        deadline = self._queue[0].enqueued_at + self._max_wait_s
        while len(self._queue) < self._max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        # 3. Take up to max_batch_size requests, skipping those whose caller has gone.
        batch: list[_Pending] = []
        now = time.perf_counter()
        while self._queue and len(batch) < self._max_batch_size:
            pending = self._queue.popleft()
            self._metrics.queue_depth.dec()
            if pending.future.done():
                continue
            # Time spent queued before this batch began forming; later arrivals waited only on the gate.
            self._metrics.queue_wait.observe(max(0.0, started - pending.enqueued_at))
            if pending.record is not None:
                pending.record.batch_formed = now
            batch.append(pending)
        return batch, now - started

    def _deliver(self, batch: list[_Pending], outputs: Sequence[Any]) -> None:
        if len(outputs) != len(batch):
            self._fail(
                batch,
                ModelFailed(f"{self._name}: model returned {len(outputs)} outputs for {len(batch)} inputs"),
            )
            return
        for pending, output in zip(batch, outputs, strict=True):
            if not pending.future.done():
                pending.future.set_result(output)

    def _fail(self, batch: list[_Pending], error: Exception) -> None:
        failure = error if isinstance(error, ModelFailed) else ModelFailed(f"{self._name}: model raised {error!r}")
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(failure)


def _stamp(batch: list[_Pending], started: float, ended: float) -> None:
    size = len(batch)
    for pending in batch:
        if pending.record is not None:
            pending.record.inference_started, pending.record.inference_ended = started, ended
            pending.record.batch_size = size


def _timed(fn: BatchFn, items: list[Any]) -> tuple[Sequence[Any], float]:
    """The model's call and how long it took, measured where it runs."""
    started = time.perf_counter()
    outputs = fn(items)
    return outputs, time.perf_counter() - started
