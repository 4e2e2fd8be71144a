"""What crosses Ray between a gateway, the controller and the replica actors: frozen dataclasses that
Ray pickles, not dicts.

The module imports neither Ray nor a model backend: the controller, the gateways and ``strata cluster``
all read these. Views that reach JSON (GET /v1/admin/cluster, ``strata cluster status --json``) turn
into dicts with ``json()``, keys in field order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from strata import errors
from strata.errors import StrataError

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
