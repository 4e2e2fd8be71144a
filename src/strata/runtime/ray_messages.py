"""What crosses Ray between a gateway, the controller and the replica actors: frozen dataclasses that
Ray pickles, not dicts.

The module imports neither Ray nor a model backend: the controller, the gateways and ``strata cluster``
all read these. Views that reach JSON (GET /v1/admin/cluster, ``strata cluster status --json``) turn
into dicts with ``json()``, keys in field order.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from strata import errors
from strata.errors import StrataError
from strata.record import RequestRecord

ReplicaState = Literal["starting", "ready", "draining"]  # a replica in the controller's replica set


@dataclass(frozen=True, slots=True)
class Failure:
    """A request's error, sent back as the replica actor's answer. Returned rather than raised: Ray
    would wrap a raised error in its own class, and the gateway must raise the same class as the
    replica did, since only some classes are safe to retry."""

    error: StrataError

    @classmethod
    def of(cls, error: StrataError) -> Failure:
        """The error as the gateway should raise it. Classes from ``strata.errors`` cross as themselves;
        ModelNotFound inside a replica (the gateway found the model) and classes from elsewhere (a
        model's own, which the gateway may not be able to import) cross as a ModelFailed."""
        if type(error).__module__ != errors.__name__ or isinstance(error, errors.ModelNotFound):
            return cls(errors.ModelFailed(error.message, param=error.param))
        return cls(error)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A traced request's W3C context, sent with its call to a replica actor: inside the actor the
    request runs under a record of the same trace (its logs carry the ids), and the actor answers
    with the stages it stamped (``Traced``)."""

    trace_id: int
    span_id: int
    flags: int

    @classmethod
    def of(cls, record: RequestRecord | None) -> TraceContext | None:
        """The context of the gateway's record, None when the request is not traced."""
        if record is None or not record.trace_id:
            return None
        return cls(record.trace_id, record.span_id, record.trace_flags)

    def record(self, replica_id: str) -> RequestRecord:
        """The actor's record of the call, in the caller's trace."""
        return RequestRecord("REPLICA", replica_id, trace_id=self.trace_id, span_id=self.span_id,
                             trace_flags=self.flags)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplicaStages:
    """When a traced request's stages happened inside a replica actor, and where.

    Times are unix epoch seconds (0.0: not reached): each process has its own ``perf_counter``, so the
    stamps cross as wall-clock times and the gateway maps them back onto its record's clock."""

    queued: float
    batch_formed: float
    inference_started: float
    inference_ended: float
    batch_size: int
    replica_id: str
    node_id: str

    @classmethod
    def of(cls, record: RequestRecord, replica_id: str, node_id: str) -> ReplicaStages:
        """The stages the replica's batcher stamped on ``record`` (in the actor, right after the call)."""
        offset = time.time() - time.perf_counter()

        def wall(stamp: float) -> float:
            return stamp + offset if stamp else 0.0

        return cls(wall(record.queued), wall(record.batch_formed), wall(record.inference_started),
                   wall(record.inference_ended), record.batch_size, replica_id, node_id)  # fmt: skip

    def stamp(self, record: RequestRecord, sent: float, answered: float) -> None:
        """Copy the stages onto the gateway's ``record``; ``sent`` and ``answered`` bound the remote call
        on the gateway's clock. Another node's clock may disagree with this one by more than the call
        took: then the stages are shifted, together, to lie within the call (their durations are the
        replica's own measure and stay exact)."""
        offset = record.received - record.received_at
        stamps = [stamp + offset if stamp else 0.0 for stamp in
                  (self.queued, self.batch_formed, self.inference_started, self.inference_ended)]  # fmt: skip
        reached = [stamp for stamp in stamps if stamp]
        if reached:
            shift = 0.0
            if min(reached) < sent:
                shift = sent - min(reached)
            elif max(reached) > answered:
                shift = answered - max(reached)
            stamps = [stamp + shift if stamp else 0.0 for stamp in stamps]
        record.queued, record.batch_formed, record.inference_started, record.inference_ended = stamps
        record.batch_size = self.batch_size
        record.replica, record.node = self.replica_id, self.node_id


@dataclass(frozen=True, slots=True)
class Traced:
    """A replica actor's answer to a traced call: the model's output and the stages it went through."""

    output: Any
    stages: ReplicaStages


@dataclass(frozen=True, slots=True)
class Loaded:
    """A replica actor's answer to ``start``: how long loading took, and where the replica is (known
    from the moment it is ready, before any status call)."""

    seconds: float
    node_id: str
    metrics_url: str | None


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """A replica actor's answer to ``status``: what the gateway routes on and the controller scales on.
    ``latencies_s`` holds the requests finished after the caller's last look (``finished`` then)."""

    replica_id: str
    ready: bool
    alive: bool
    queue_depth: int
    stalled_s: float
    in_flight: int
    arrivals: int
    idle_s: float
    finished: int
    tokens_out: float
    latencies_s: tuple[float, ...]
    node_id: str
    metrics_url: str | None


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One replica in the controller's replica set."""

    replica_id: str
    state: ReplicaState
    ready: bool
    queue_depth: int
    stalled_s: float
    in_flight: int
    node_id: str | None
    metrics_url: str | None
    # A replica that stays "starting" is loading a big model - or waiting for a node with the resources
    # it asks for, which Ray does silently: the age tells an operator which to suspect.
    starting_for_s: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    """An autoscaling decision that changed a deployment's replica count."""

    at: float  # epoch seconds
    deployment: str
    current: int
    desired: int
    reason: str
    terms: dict[str, float]


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """One deployment in the controller's answer: its replicas and its latest scaling decisions."""

    replicas: tuple[ReplicaView, ...]
    desired: int | None
    reason: str | None
    decision_counts: dict[str, int]
    decisions: tuple[Decision, ...]  # the latest few
    replaced: int
    load_errors: dict[str, str]  # replica id -> why it failed to load

    def json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RouteSplit:
    """A traffic split decided on one gateway, for all. Revisions come from the controller's clock (ns
    since the epoch): a restarted controller still counts upwards, and gateways' clocks never matter."""

    revision: int
    weights: dict[str, float]


@dataclass(frozen=True, slots=True)
class ReplicaSet:
    """The controller's answer to a gateway's sync."""

    started_at: float  # when this controller incarnation started (epoch seconds)
    deployments: dict[str, DeploymentView]
    routes: dict[str, RouteSplit]
