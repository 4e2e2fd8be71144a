"""Keeps a deployment's replicas alive: a replica whose worker died, or whose model call has made
no progress for ``stall_timeout_s``, is taken out of routing and replaced by a fresh one, which
takes traffic only once it has loaded and warmed up.

The loop: 1. sleep one check interval; 2. find dead or stalled replicas; 3. restart each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from strata.serving.router import ReplicaSlot
from strata.spec.resilience import HealthSpec

log = logging.getLogger(__name__)

RestartFn = Callable[[ReplicaSlot, str], Coroutine[Any, Any, None]]


class ReplicaSupervisor:
    def __init__(self, slots: list[ReplicaSlot], spec: HealthSpec, restart: RestartFn, *, name: str) -> None:
        self._slots = slots
        self._spec = spec
        self._restart = restart
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._restarts: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._spec.restart and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._name}-supervisor")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._restarts) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def unhealthy(self) -> list[tuple[ReplicaSlot, str]]:
        found = []
        for slot in self._slots:
            if not slot.serving or slot.restarting:
                continue
            if not slot.replica.alive:
                found.append((slot, "its worker died"))
            elif slot.replica.stalled_s() > self._spec.stall_timeout_s:
                found.append((slot, f"no progress for {slot.replica.stalled_s():.1f} s"))
        return found

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._spec.check_interval_ms / 1000.0)
            for slot, why in self.unhealthy():
                log.warning("%s: restarting %s: %s", self._name, slot.replica.replica_id, why)
                slot.restarting = True
                task = asyncio.create_task(self._restart(slot, why), name=f"restart-{slot.replica.replica_id}")
                self._restarts.add(task)
                task.add_done_callback(self._restarts.discard)
