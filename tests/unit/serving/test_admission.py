import asyncio

import pytest
from fake_clock import FakeClock

from strata.errors import DeadlineExceeded, Shed
from strata.serving.admission import AdmissionController, Priority
from strata.serving.deadline import NO_DEADLINE, Deadline
from strata.spec.resilience import AdmissionSpec


def _controller(**spec: object) -> AdmissionController:
    return AdmissionController(AdmissionSpec.model_validate(spec), target_s=None, name="d")


async def test_no_limit_admits_everything() -> None:
    controller = _controller()
    permits = [await controller.acquire(Priority.BATCH, NO_DEADLINE) for _ in range(100)]
    assert controller.in_flight == 0
    for permit in permits:
        permit.release()


async def test_full_queue_sheds_at_once_with_retry_after() -> None:
    controller = _controller(max_concurrency=1, max_waiting=1)
    held = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    waiter = asyncio.create_task(controller.acquire(Priority.INTERACTIVE, NO_DEADLINE))
    await asyncio.sleep(0)
    with pytest.raises(Shed) as shed:
        await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    assert shed.value.headers()["Retry-After"] == "1"
    held.release()
    (await waiter).release()
    assert controller.in_flight == 0
    assert controller.shed["queue_full"] == 1


async def test_interactive_goes_first_and_pushes_batch_out() -> None:
    controller = _controller(max_concurrency=1, max_waiting=2)
    held = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        try:
            permit = await controller.acquire(priority, NO_DEADLINE)
        except Shed:
            order.append(f"{name} shed")
            return
        order.append(name)
        permit.release()

    batch_1 = asyncio.create_task(wait("batch-1", Priority.BATCH))
    batch_2 = asyncio.create_task(wait("batch-2", Priority.BATCH))
    await asyncio.sleep(0)
    interactive = asyncio.create_task(wait("interactive", Priority.INTERACTIVE))
    await asyncio.sleep(0)
    held.release()
    await asyncio.gather(batch_1, batch_2, interactive)
    assert order == ["batch-2 shed", "interactive", "batch-1"]


async def test_waiting_longer_than_max_wait_is_shed() -> None:
    controller = _controller(max_concurrency=1, max_wait_ms=20)
    held = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    with pytest.raises(Shed):
        await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    with pytest.raises(DeadlineExceeded):
        await controller.acquire(Priority.INTERACTIVE, Deadline.after_ms(10))
    assert controller.waiting == 0
    held.release()
    assert controller.in_flight == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    controller = _controller(max_concurrency=1)
    held = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    waiter = asyncio.create_task(controller.acquire(Priority.INTERACTIVE, NO_DEADLINE))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert controller.waiting == 0
    held.release()
    assert controller.in_flight == 0


def test_adaptive_needs_a_ceiling() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        AdmissionSpec(adaptive=True)


async def test_adaptive_limit_shrinks_when_requests_pass_the_latency_target() -> None:
    clock = FakeClock()
    spec = AdmissionSpec(max_concurrency=10, min_concurrency=2, adaptive=True)
    controller = AdmissionController(spec, target_s=0.1, name="d", clock=clock)
    assert controller.limit == 10
    for _ in range(10):
        permit = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
        clock.advance(0.5)  # well past the 100 ms target
        permit.release()
    assert controller.limit == 3  # 10 x 0.9^10, floored by int
    for _ in range(30):
        permits = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(controller.limit)]
        clock.advance(0.01)
        for permit in permits:
            permit.release()
    assert controller.limit > 3  # healthy and in use: it grows back
