"""Metrics of the resilience layer: retries, shedding, breakers, fallbacks, versions, restarts.
Registered in the app's own registry, beside the serving metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from strata.observability.lean import LeanCounter


class ResilienceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.retries = Counter(
            "strata_retries", "Tries after the first, on another replica", ["deployment"], registry=r
        )
        self.retries_denied = Counter(
            "strata_retries_denied", "Retries refused by the retry budget", ["deployment"], registry=r
        )
        self.shed = Counter(
            "strata_shed", "Requests turned away by admission control", ["deployment", "reason"], registry=r
        )
        self.ejections = Counter(
            "strata_replica_ejections", "Replicas ejected by their breaker", ["deployment", "reason"], registry=r
        )
        self.restarts = Counter(
            "strata_replica_restarts", "Replicas restarted (died or stalled)", ["deployment"], registry=r
        )
        self.breaker_open = Gauge(
            "strata_deployment_breaker_open", "1 while the deployment's breaker is open", ["deployment"], registry=r
        )
        self.fallbacks = Counter(
            "strata_fallbacks", "Requests served by a fallback route", ["route", "fallback"], registry=r
        )
        self.version_requests = LeanCounter(  # counted on every request: lean (see lean.py)
            "strata_version_requests",
            "Requests per route version and outcome",
            ["route", "version", "outcome"],
            registry=r,
        )

        self._breakers_shown: dict[str, tuple[Gauge, bool]] = {}  # deployment -> (its gauge child, open?)

    def show_breaker(self, deployment: str, is_open: bool) -> None:
        """Set the deployment's breaker gauge. Called after every call; the gauge is set only when the
        state changed (a set takes a lock), whichever route's call saw it."""
        shown = self._breakers_shown.get(deployment)
        if shown is not None and shown[1] is is_open:
            return
        gauge = shown[0] if shown is not None else self.breaker_open.labels(deployment=deployment)
        gauge.set(1 if is_open else 0)
        self._breakers_shown[deployment] = (gauge, is_open)

    def declare(self, deployment: str) -> None:
        """Start a deployment's counters at zero: a series born at its first restart or retry has no
        increase for ``increase()`` to see, so the alert on the first restart would never fire."""
        for counter in (self.restarts, self.retries, self.retries_denied):
            counter.labels(deployment=deployment)
