"""Pipelines started by events and by cron schedules, each start idempotent.

An event starts one job per pipeline that names its type, owned by the event's tenant, with the
idempotency key ``event:<event id>:<pipeline>``: an event delivered twice (the Redis bus delivers
at least once) starts each job once. A schedule starts one job per slot with the key
``schedule:<pipeline>:<slot>``: every gateway and worker of an app may run the same schedule and
each slot still runs once. At start, the latest slot already passed is submitted too (a slot
missed while every process was down runs late, once; older ones are skipped, not replayed).
The jobs are ordinary jobs: listed, cancelled and retried through the jobs API like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from croniter import croniter

from strata.spec.pipelines import PipelineSpec, TriggerSpec
from strata.workflows.events import Event, EventBus
from strata.workflows.records import JobState, NewJob
from strata.workflows.store import JobStore

log = logging.getLogger(__name__)


class Triggers:
    def __init__(
        self, pipelines: list[PipelineSpec], steps: dict[str, list[str]], store: JobStore, bus: EventBus,
        *, wake: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        self.store = store
        self.bus = bus
        self._steps = steps  # pipeline -> its steps in order (what a new job is created with)
        self._wake = wake
        self._by_event: dict[str, list[str]] = {}
        self._schedules: list[tuple[str, TriggerSpec]] = []
        for pipeline in pipelines:
            for trigger in pipeline.triggers:
                if trigger.event is not None:
                    self._by_event.setdefault(trigger.event, []).append(pipeline.name)
                else:
                    self._schedules.append((pipeline.name, trigger))
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def active(self) -> bool:
        return bool(self._by_event or self._schedules)

    def start(self) -> None:
        if self._by_event:
            self.bus.start(self.on_event)
        self._tasks = [
            asyncio.create_task(self._run_schedule(name, trigger), name=f"schedule-{name}")
            for name, trigger in self._schedules
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.bus.stop()

    def pipelines_for(self, event_type: str) -> list[str]:
        return list(self._by_event.get(event_type, ()))

    async def publish(self, event: Event) -> list[str]:
        """Hand ``event`` to the bus if a pipeline of the app starts on its type (else it costs nothing);
        the pipelines it starts."""
        pipelines = self.pipelines_for(event.type)
        if pipelines:
            await self.bus.publish(event)
        return pipelines

    async def on_event(self, event: Event) -> None:
        for pipeline in self._by_event.get(event.type, ()):
            job_input = {"event": {"id": event.id, "type": event.type, "data": event.data, "at": event.at}}
            await self._start(event.tenant, pipeline, job_input, f"event:{event.id}:{pipeline}")

    async def _run_schedule(self, pipeline: str, trigger: TriggerSpec) -> None:
        assert trigger.schedule is not None
        now = dt.datetime.now(dt.UTC)
        slot = croniter(trigger.schedule, now).get_prev(dt.datetime)  # the latest slot passed: run it (once)
        while True:
            try:
                await self._start_slot(pipeline, trigger, slot)
            except Exception:  # a boundary: the database may be away; the next slot tries again
                log.exception("scheduled start of pipeline %s at %s failed", pipeline, slot.isoformat())
            slot = croniter(trigger.schedule, slot).get_next(dt.datetime)
            await asyncio.sleep(max(0.0, slot.timestamp() - time.time()))

    async def _start_slot(self, pipeline: str, trigger: TriggerSpec, slot: dt.datetime) -> JobState:
        job_input = {**trigger.input, "scheduled_for": slot.isoformat()}
        return await self._start(trigger.tenant, pipeline, job_input, f"schedule:{pipeline}:{slot.isoformat()}")

    async def _start(self, tenant: str, pipeline: str, job_input: dict[str, Any], key: str) -> JobState:
        request_hash = hashlib.sha256(orjson.dumps(job_input, option=orjson.OPT_SORT_KEYS)).hexdigest()
        job, created = await self.store.submit(
            NewJob(tenant, None, pipeline, job_input, self._steps[pipeline], idempotency_key=key,
                   request_hash=request_hash)
        )  # fmt: skip
        if created:
            self._wake()
        return job
