"""The gateway's end of a replica actor: a ``Replica`` the router, breakers and retries use as if
it were local.

The controller starts and stops the actors; a gateway only sends them requests. So ``start`` and
``stop`` do nothing here, and readiness comes from the controller's replica set (``mark``), except
that a failed call marks the replica down at once, before the next sync says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayError

from strata.errors import ModelFailed, ReplicaUnavailable, StrataError
from strata.record import current_record
from strata.runtime.ray_messages import Failure, TraceContext, Traced
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream


def _remote_failure(replica_id: str, error: RayError) -> StrataError:
    """A retryable ReplicaUnavailable when the actor (or its node) is gone; ModelFailed otherwise."""
    if isinstance(error, RayActorError):
        return ReplicaUnavailable(f"replica {replica_id} is unreachable: {type(error).__name__}")
    return ModelFailed(f"replica {replica_id} failed: {type(error).__name__}: {error}")


class RayReplica:
    def __init__(self, replica_id: str, actor: Any) -> None:
        self.replica_id = replica_id
        self._actor = actor
        self._ready = False
        self._dead = False
        self._queue_depth = 0
        self._stalled_s = 0.0

    def mark(self, *, ready: bool, queue_depth: int, stalled_s: float) -> None:
        """The controller's latest view of this replica (from the gateway's sync)."""
        self._ready = ready
        self._queue_depth = queue_depth
        self._stalled_s = stalled_s

    @property
    def ready(self) -> bool:
        return self._ready and not self._dead

    @property
    def alive(self) -> bool:
        return not self._dead

    def stalled_s(self) -> float:
        return self._stalled_s

    @property
    def queue_depth(self) -> int:
        return self._queue_depth

    async def start(self) -> None:
        return None  # the controller started it

    async def stop(self) -> None:
        return None  # the controller drains and stops it

    # A request of the wrong kind (infer on a text model, or the reverse) is refused inside the actor by
    # the local replica, and its InvalidRequest crosses back as such: no second check here.

    async def infer(self, item: Any) -> Any:
        """The replica's answer. A traced request carries its trace into the actor, and the actor's
        stages (batch formed, model call) come back onto the request's record: its trace shows them."""
        record = current_record.get()
        trace = TraceContext.of(record)
        sent = time.perf_counter()
        ref = self._actor.infer.remote(item, trace) if trace is not None else self._actor.infer.remote(item)
        try:
            answer = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)  # the client left or the try timed out: free the replica's batch slot too
            raise
        except RayError as error:
            raise self.failed(error) from None
        if isinstance(answer, Failure):
            raise answer.error
        if isinstance(answer, Traced):
            if record is not None:
                answer.stages.stamp(record, sent, time.perf_counter())
            return answer.output
        return answer

    def generate(self, request: GenerationRequest) -> GenerationStream:
        if not self.ready:
            raise ReplicaUnavailable(f"replica {self.replica_id} is not ready")
        return RayGenerationStream(asyncio.get_running_loop(), self._actor.generate.remote(request), self)

    def failed(self, error: RayError) -> StrataError:
        """The error a caller raises for a failed remote call; marks this replica down when it is gone."""
        if isinstance(error, ActorDiedError):
            self._dead = True  # out of routing now; the controller replaces it
        elif isinstance(error, RayActorError):
            self._ready = False  # unreachable for now: the next sync says whether it came back
        return _remote_failure(self.replica_id, error)


class RayGenerationStream(GenerationStream):
    """Events read from the actor's streaming generator; closing it cancels the remote generation."""

    def __init__(self, loop: asyncio.AbstractEventLoop, refs: Any, replica: RayReplica) -> None:
        super().__init__(loop)
        self._refs = refs
        self._replica = replica
        self._finished = False

    def close(self) -> None:
        if not self._finished and not self.cancelled:
            ray.cancel(self._refs)
        super().close()

    async def events(self) -> AsyncIterator[GenerationEvent]:
        try:
            async for ref in self._refs:
                event: GenerationEvent | Failure = await ref
                if isinstance(event, Failure):
                    self._finished = True
                    raise event.error
                if event.ends_stream:
                    self._finished = True
                yield event
                if self._finished:
                    return
        except RayError as error:
            self._finished = True
            raise self._replica.failed(error) from None
        finally:
            self.close()
