"""Event triggers and schedules against a real database (SQLite and PostgreSQL) and a real Redis:
each start is idempotent, redelivery starts nothing new, an unacknowledged event is delivered again."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from strata.spec import AppSpec
from strata.spec.pipelines import TriggerSpec
from strata.store import Database
from strata.workflows.events import Event, MemoryBus, RedisStreamBus
from strata.workflows.store import JobStore
from strata.workflows.triggers import Triggers

REDIS = "redis://127.0.0.1:6379/0"
ECHO = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
}
PIPELINES = [
    {"name": "index", "steps": [{"name": "a", "kind": "postprocess"}], "triggers": [{"event": "file.uploaded"}]},
    {"name": "audit", "steps": [{"name": "a", "kind": "postprocess"}], "triggers": [{"event": "file.uploaded"}]},
    {"name": "nightly", "steps": [{"name": "a", "kind": "postprocess"}],
     "triggers": [{"schedule": "0 3 * * *", "tenant": "ops", "input": {"report": "daily"}}]},
]  # fmt: skip


def _triggers(database: Database, tmp_path: Path) -> Triggers:
    store = {"database_url": str(database.url), "artifacts_url": str(tmp_path / "artifacts")}
    spec = AppSpec.model_validate({**ECHO, "store": store, "pipelines": PIPELINES})
    return Triggers(spec.pipelines, {p["name"]: ["a"] for p in PIPELINES}, JobStore(database), MemoryBus())


async def test_an_event_starts_each_subscribed_pipeline_once_however_often_it_arrives(
    database: Database, tmp_path: Path
) -> None:
    triggers = _triggers(database, tmp_path)
    event = Event("file.uploaded", "acme", {"file_id": "file-1"})
    for _ in range(3):  # delivered three times (at least once)
        await triggers.on_event(event)
    await triggers.on_event(Event("file.deleted", "acme"))  # nobody listens: nothing starts
    jobs = await triggers.store.list_jobs("acme", limit=10)
    assert sorted(job.pipeline for job in jobs) == ["audit", "index"]
    assert {job.idempotency_key for job in jobs} == {f"event:{event.id}:index", f"event:{event.id}:audit"}
    assert jobs[0].input["event"]["data"] == {"file_id": "file-1"}
    assert await triggers.store.list_jobs("globex", limit=10) == []  # the event's tenant owns the jobs


async def test_a_schedule_starts_its_latest_slot_once_across_gateways(database: Database, tmp_path: Path) -> None:
    first, second = _triggers(database, tmp_path), _triggers(database, tmp_path)  # two gateways, one schedule
    first.start()
    second.start()
    try:
        for _ in range(100):
            if await first.store.list_jobs("ops", limit=10):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    finally:
        await first.stop()
        await second.stop()
    [job] = await first.store.list_jobs("ops", limit=10)
    assert job.pipeline == "nightly"
    assert job.input["report"] == "daily"
    assert job.input["scheduled_for"].endswith("T03:00:00+00:00")
    assert job.idempotency_key == f"schedule:nightly:{job.input['scheduled_for']}"


def test_a_trigger_names_one_source_and_a_valid_schedule() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'event' or 'schedule'"):
        TriggerSpec.model_validate({"event": "a.b", "schedule": "* * * * *"})
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        TriggerSpec.model_validate({"schedule": "every day"})
    with pytest.raises(ValidationError, match="event"):
        TriggerSpec.model_validate({"event": "Bad Type!"})


async def test_the_redis_bus_redelivers_an_event_its_consumer_did_not_acknowledge() -> None:
    stream = f"strata-test:events:{secrets.token_hex(6)}"
    seen: list[tuple[str, str]] = []
    failing, healthy = (RedisStreamBus(REDIS, stream=stream, claim_idle_s=0.2, block_ms=50) for _ in range(2))

    async def crash(event: Event) -> None:
        seen.append(("failing", event.id))
        raise RuntimeError("this consumer dies before acknowledging")

    async def record(event: Event) -> None:
        seen.append(("healthy", event.id))

    failing.start(crash)
    try:
        event = Event("telemetry.received", "acme", {"vehicle": 7})
        await failing.publish(event)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        await failing.stop()  # it took the event and never acknowledged it
        healthy.start(record)
        for _ in range(200):
            if ("healthy", event.id) in seen:
                break
            await asyncio.sleep(0.02)
        assert seen[0] == ("failing", event.id)
        assert ("healthy", event.id) in seen  # delivered again, to the consumer still alive
    finally:
        await healthy.stop()
        redis = Redis.from_url(REDIS)
        await redis.delete(stream)
        await redis.aclose()
