"""Admission by latency target and fair between tenants, driven by a stepped clock."""

import asyncio

import pytest
from fake_clock import FakeClock

from strata.errors import Shed
from strata.serving.admission import AdmissionController, Permit, Priority
from strata.serving.deadline import NO_DEADLINE
from strata.spec.resilience import AdmissionSpec

TARGET_S = 0.1  # budget: 80 ms with the default headroom of 0.8
SERVICE_S = 0.04


async def _warm(clock: FakeClock, **spec: object) -> AdmissionController:
    """A controller with an automatic limit of 2 that has timed requests of 40 ms, served two at a time."""
    controller = AdmissionController(
        AdmissionSpec.model_validate(spec), target_s=TARGET_S, name="d", clock=clock, auto_limit=2
    )
    for _ in range(3):
        controller.predictor.observe(hold_s=SERVICE_S, answer_s=SERVICE_S, load=2)
    return controller


def _queue(
    controller: AdmissionController, tenant: str, priority: Priority = Priority.INTERACTIVE
) -> asyncio.Task[Permit]:
    return asyncio.create_task(controller.acquire(priority, NO_DEADLINE, tenant))


async def _settle() -> None:
    for _ in range(5):  # a waiter's task wakes a few loop turns after its slot is handed over
        await asyncio.sleep(0)


async def test_a_request_predicted_to_pass_the_target_is_shed_at_once() -> None:
    clock = FakeClock()
    controller = await _warm(clock)
    held = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(2)]
    waiters = [_queue(controller, "a"), _queue(controller, "a")]  # predicted 50 and 70 ms: within 80 ms
    await asyncio.sleep(0)
    assert controller.waiting == 2
    assert controller.predicted_s(Priority.INTERACTIVE, "a") == pytest.approx(0.09)
    assert controller.predicted_s(Priority.INTERACTIVE, "b") == pytest.approx(0.05)  # fair: b goes first
    with pytest.raises(Shed) as shed:  # 2 ahead and half a hold drain in 50 ms, + 40 ms to answer: 90 ms
        await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE, "a")
    assert shed.value.retry_after_s == pytest.approx(0.05)  # the drain time of the queue ahead of it
    assert shed.value.headers()["Retry-After"] == "1"
    assert "predicted latency 90 ms" in str(shed.value)
    assert controller.shed["slo"] == 1
    for permit in held:
        permit.release()
    for waiter in waiters:
        (await waiter).release()
    assert controller.in_flight == 0
    assert controller.waiting == 0


async def test_nothing_is_shed_before_a_request_has_been_timed() -> None:
    controller = AdmissionController(
        AdmissionSpec(max_waiting=8), target_s=TARGET_S, name="d", clock=FakeClock(), auto_limit=1
    )
    held = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    waiters = [_queue(controller, "a") for _ in range(5)]
    await asyncio.sleep(0)
    assert controller.waiting == 5
    assert not controller.shed
    held.release()
    for waiter in waiters:
        (await waiter).release()


async def test_no_target_or_slo_off_means_no_automatic_limit() -> None:
    for target_s, spec in ((None, AdmissionSpec()), (TARGET_S, AdmissionSpec(slo=False))):
        controller = AdmissionController(spec, target_s=target_s, name="d", auto_limit=2)
        assert controller.limit is None
        permits = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(10)]
        for permit in permits:
            permit.release()


async def test_an_explicit_limit_wins_over_the_automatic_one_and_resize_follows_replicas() -> None:
    explicit = AdmissionController(AdmissionSpec(max_concurrency=3), target_s=TARGET_S, name="d", auto_limit=64)
    explicit.resize(128)
    assert explicit.limit == 3
    controller = AdmissionController(AdmissionSpec(), target_s=TARGET_S, name="d", clock=FakeClock(), auto_limit=2)
    controller.predictor.observe(hold_s=SERVICE_S, answer_s=SERVICE_S, load=16)  # drains 400/s: plenty
    held = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(2)]
    waiter = _queue(controller, "a")
    await asyncio.sleep(0)
    controller.resize(3)  # a replica joined: the waiter gets the new slot at once
    assert controller.limit == 3
    (await waiter).release()
    for permit in held:
        permit.release()


async def test_a_flooding_tenant_is_shed_while_a_quiet_one_gets_in_first() -> None:
    clock = FakeClock()
    controller = await _warm(clock)
    held = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(2)]
    flood = [_queue(controller, "flood"), _queue(controller, "flood")]
    await asyncio.sleep(0)
    with pytest.raises(Shed):  # the flood's third waiter would pass the target
        await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE, "flood")
    quiet = _queue(controller, "quiet")  # fair order: ahead of the flood's waiters (the lighter user wins ties)
    await asyncio.sleep(0)
    assert controller.waiting == 3
    held[0].release()
    await _settle()
    assert [quiet.done(), flood[0].done(), flood[1].done()] == [True, False, False]
    held[1].release()
    await _settle()
    assert flood[0].done()
    (await quiet).release()
    await _settle()
    assert flood[1].done()
    (await flood[0]).release()
    (await flood[1]).release()


async def test_batch_requests_count_the_interactive_ones_ahead_of_them() -> None:
    clock = FakeClock()
    controller = await _warm(clock)
    held = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(2)]
    batch = _queue(controller, "jobs", Priority.BATCH)
    interactive = [_queue(controller, "a") for _ in range(1)]
    await asyncio.sleep(0)
    with pytest.raises(Shed):  # one interactive + one batch ahead, and interactive goes first
        await controller.acquire(Priority.BATCH, NO_DEADLINE, "jobs")
    # An interactive request does not count the batch waiter: it is admitted before it.
    assert controller.predicted_s(Priority.INTERACTIVE, "a") == pytest.approx(0.07)
    second = _queue(controller, "a")
    await asyncio.sleep(0)
    for permit in held:
        permit.release()
    for task in (*interactive, second, batch):
        (await task).release()
    assert controller.in_flight == 0


async def test_a_stream_is_predicted_by_its_first_event() -> None:
    clock = FakeClock()
    controller = AdmissionController(AdmissionSpec(), target_s=TARGET_S, name="d", clock=clock, auto_limit=4)
    permit = await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE)
    clock.advance(0.02)
    permit.answered()
    clock.advance(1.0)  # the stream goes on for a second after its first event
    permit.answered()  # only the first one counts
    permit.release()
    assert controller.predictor.answer_s == pytest.approx(0.02)
    assert controller.predictor.hold_s == pytest.approx(1.02)
    assert controller.predicted_s() == pytest.approx(0.02)  # a free slot: just the time to first event


async def test_the_headroom_under_the_target_is_kept_for_tenants_within_their_share() -> None:
    clock = FakeClock()
    controller = await _warm(clock, tenant_weights={"quiet": 0.25})
    held = [await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE) for _ in range(2)]
    flood = [_queue(controller, "flood"), _queue(controller, "flood")]
    await asyncio.sleep(0)
    # Both would wait behind 2 requests, predicted 90 ms: past the 80 ms budget, within the 100 ms target.
    assert controller.predicted_s(Priority.INTERACTIVE, "flood") == pytest.approx(0.09)
    assert controller.predicted_s(Priority.INTERACTIVE, "quiet") == pytest.approx(0.09)
    with pytest.raises(Shed):
        await controller.acquire(Priority.INTERACTIVE, NO_DEADLINE, "flood")
    quiet = _queue(controller, "quiet")
    await asyncio.sleep(0)
    assert controller.waiting == 3
    assert controller.shed["slo"] == 1
    for permit in held:
        permit.release()
    for task in (*flood, quiet):
        (await task).release()


async def test_an_automatic_limit_shrinks_to_what_is_answered_within_half_the_budget() -> None:
    controller = AdmissionController(AdmissionSpec(), target_s=TARGET_S, name="d", auto_limit=64)
    assert controller.limit == 64  # nothing timed yet
    controller.predictor.observe(hold_s=0.5, answer_s=0.5, load=64)  # a full batch takes far past the target
    assert controller.limit == 5  # 128/s x 40 ms
    for _ in range(200):
        controller.predictor.observe(hold_s=0.02, answer_s=0.02, load=64)  # fast again: back to the ceiling
    assert controller.limit == 64
    probing = AdmissionController(AdmissionSpec(), target_s=TARGET_S, name="d", auto_limit=4)
    probing.predictor.observe(hold_s=0.035, answer_s=0.035, load=1)  # alone, 35 ms: within the 40 ms allowance
    assert probing.limit == 2  # would two at once be as fast (two replicas)? it tries
    streaming = AdmissionController(AdmissionSpec(), target_s=TARGET_S, name="d", auto_limit=32)
    streaming.predictor.observe(hold_s=5.0, answer_s=0.02, load=32)  # long streams, first tokens fast
    assert streaming.limit == 32  # by the first event: every decode slot stays in use


@pytest.mark.parametrize("weight", [0, -1, 1001])
def test_tenant_weights_must_be_positive_and_bounded(weight: float) -> None:
    with pytest.raises(ValueError, match="tenant_weights"):
        AdmissionSpec(tenant_weights={"acme": weight})
