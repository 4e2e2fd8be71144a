import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from strata.errors import ModelFailed, Overloaded
from strata.observability.metrics import Metrics
from strata.record import RequestRecord, current_record
from strata.serving.batcher import INLINE_STREAK, DynamicBatcher, _InlinePolicy


class RecordingModel:
    """A real batch function that records the batches it was given."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.batches: list[list[Any]] = []
        self.sleep_s = sleep_s

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        self.batches.append(list(inputs))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if "boom" in inputs:
            raise ValueError("boom")
        return [f"out:{x}" for x in inputs]


def _batcher(model: RecordingModel, **kwargs: Any) -> DynamicBatcher:
    options = {"max_batch_size": 4, "max_wait_ms": 50.0, "max_queue": 100} | kwargs
    return DynamicBatcher(
        model, executor=ThreadPoolExecutor(1), metrics=Metrics().for_deployment("t"), name="t", **options
    )


@pytest.mark.parametrize("inline", ["never", "always"])
async def test_full_batch_leaves_without_waiting(inline: str) -> None:
    model = RecordingModel()
    batcher = _batcher(model, inline=inline, max_wait_ms=10_000)
    batcher.start()
    started = time.perf_counter()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)))
    assert time.perf_counter() - started < 5  # far below the 10 s gate: size closed it
    assert results == ["out:0", "out:1", "out:2", "out:3"]
    assert model.batches == [[0, 1, 2, 3]]
    await batcher.stop()


@pytest.mark.parametrize("inline", ["never", "always"])
async def test_partial_batch_leaves_after_max_wait(inline: str) -> None:
    model = RecordingModel()
    batcher = _batcher(model, inline=inline, max_wait_ms=30)
    batcher.start()
    started = time.perf_counter()
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"))
    assert time.perf_counter() - started >= 0.03
    assert results == ["out:a", "out:b"]
    assert model.batches == [["a", "b"]]
    await batcher.stop()


async def test_requests_queued_while_busy_form_the_next_batches() -> None:
    model = RecordingModel(sleep_s=0.05)
    batcher = _batcher(model, max_wait_ms=0)
    batcher.start()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(9)))
    assert results == [f"out:{i}" for i in range(9)]
    assert all(len(batch) <= 4 for batch in model.batches)
    assert sorted(x for batch in model.batches for x in batch) == list(range(9))
    await batcher.stop()


async def test_model_error_fails_its_batch_and_the_replica_keeps_serving() -> None:
    model = RecordingModel()
    batcher = _batcher(model, max_wait_ms=20)
    batcher.start()
    outcomes = await asyncio.gather(batcher.submit("boom"), batcher.submit("x"), return_exceptions=True)
    assert all(isinstance(outcome, ModelFailed) for outcome in outcomes)
    assert await batcher.submit("after") == "out:after"
    await batcher.stop()


async def test_full_queue_sheds_at_once() -> None:
    model = RecordingModel(sleep_s=0.2)
    batcher = _batcher(model, max_queue=2, max_batch_size=1, max_wait_ms=0)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.05)  # the first is now inside the model
    queued = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as caught:
        await batcher.submit(3)
    assert caught.value.headers()["Retry-After"] == "1"
    assert await asyncio.gather(first, *queued) == ["out:0", "out:1", "out:2"]
    await batcher.stop()


async def test_cancelled_request_is_skipped() -> None:
    model = RecordingModel(sleep_s=0.1)
    batcher = _batcher(model, max_batch_size=1, max_wait_ms=0)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit("first"))
    await asyncio.sleep(0.02)
    abandoned = asyncio.ensure_future(batcher.submit("abandoned"))
    await asyncio.sleep(0)
    abandoned.cancel()
    assert await first == "out:first"
    assert await batcher.submit("next") == "out:next"
    assert ["abandoned"] not in model.batches
    await batcher.stop()


def test_auto_goes_inline_after_a_streak_of_cheap_calls_and_back_at_the_first_slow_one() -> None:
    policy = _InlinePolicy("auto", below_s=0.0002)
    for _ in range(INLINE_STREAK - 1):
        policy.measured(0.00001)
    assert not policy.inline
    policy.measured(0.00001)
    assert policy.inline
    policy.measured(0.001)  # one slow call: back to the thread at once
    assert not policy.inline
    policy.measured(0.00001)
    assert not policy.inline  # and a new streak is needed
    never, always = _InlinePolicy("never", 0.0002), _InlinePolicy("always", 0.0002)
    for _ in range(2 * INLINE_STREAK):
        never.measured(0.0)
        always.measured(1.0)
    assert not never.inline
    assert always.inline


async def test_an_inline_idle_batcher_runs_a_batch_of_one_in_the_callers_task() -> None:
    model = RecordingModel()
    batcher = _batcher(model, inline="always", max_wait_ms=0)
    batcher.start()
    record = RequestRecord("POST", "/v1/models/m/predict")
    token = current_record.set(record)
    try:
        assert await batcher.submit("x") == "out:x"
    finally:
        current_record.reset(token)
    assert model.batches == [["x"]]
    assert record.queued == record.batch_formed == record.inference_started > 0
    assert record.inference_ended >= record.inference_started
    with pytest.raises(ModelFailed, match="boom"):  # the model's error is the request's, the batcher lives
        await batcher.submit("boom")
    assert await batcher.submit("y") == "out:y"
    assert batcher.alive
    await batcher.stop()


async def test_queued_requests_get_their_stage_times_on_their_records() -> None:
    model = RecordingModel()
    batcher = _batcher(model, max_wait_ms=20)
    batcher.start()

    async def one(item: str) -> RequestRecord:
        record = RequestRecord("POST", "/v1/embeddings")
        current_record.set(record)  # this task's own context
        await batcher.submit(item)
        return record

    records = await asyncio.gather(*(asyncio.create_task(one(x)) for x in "ab"))
    for record in records:
        assert 0 < record.queued <= record.batch_formed <= record.inference_started <= record.inference_ended
    assert model.batches == [["a", "b"]]
    await batcher.stop()
