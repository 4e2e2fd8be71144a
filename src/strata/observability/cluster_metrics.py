"""Prometheus metrics of a distributed deployment, read from the controller's latest answer.

Each gateway exports what its last sync brought: replicas per state, the autoscaler's desired count
and its decisions by reason, replicas replaced after dying. So every gateway's /metrics shows the
cluster's scaling, and a dashboard needs no scrape of the controller (a Ray actor, not a server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATES = ("starting", "ready", "draining")


class ReplicaView(Protocol):
    @property
    def state(self) -> str: ...


class DeploymentView(Protocol):
    """What these metrics read of one deployment in the controller's answer (``ray_messages.DeploymentView``)."""

    @property
    def replicas(self) -> Sequence[ReplicaView]: ...

    @property
    def desired(self) -> int | None: ...

    @property
    def decision_counts(self) -> Mapping[str, int]: ...

    @property
    def replaced(self) -> int: ...


ClusterView = Callable[[], Mapping[str, DeploymentView]]


class ClusterCollector(Collector):
    def __init__(self, view: ClusterView, sync_failures: Callable[[], int]) -> None:
        self._view = view
        self._sync_failures = sync_failures

    def collect(self) -> Iterator[Metric]:
        replicas = GaugeMetricFamily(
            "strata_cluster_replicas",
            "Replicas by state, as the controller reports them",
            labels=["deployment", "state"],
        )
        desired = GaugeMetricFamily(
            "strata_autoscaler_desired_replicas", "Replicas the autoscaler wants now", labels=["deployment"]
        )
        decisions = CounterMetricFamily(
            "strata_autoscaler_decisions",
            "Autoscaler decisions, by the term that decided",
            labels=["deployment", "reason"],
        )
        replaced = CounterMetricFamily(
            "strata_cluster_replicas_replaced", "Replicas replaced after dying or hanging", labels=["deployment"]
        )
        for deployment, view in self._view().items():
            for state in STATES:
                count = sum(1 for r in view.replicas if r.state == state)
                replicas.add_metric([deployment, state], count)
            if view.desired is not None:
                desired.add_metric([deployment], view.desired)
            for reason, count in view.decision_counts.items():
                decisions.add_metric([deployment, reason], count)
            replaced.add_metric([deployment], view.replaced)
        failures = CounterMetricFamily(
            "strata_cluster_sync_failures", "Replica-set syncs with the controller that failed"
        )
        failures.add_metric([], self._sync_failures())
        yield from (replicas, desired, decisions, replaced, failures)


def register_cluster_metrics(registry: CollectorRegistry, view: ClusterView, sync_failures: Callable[[], int]) -> None:
    registry.register(ClusterCollector(view, sync_failures))
