"""Metrics of the response cache, in the app's registry. The hit rate of a route is
``strata_cache_requests_total{result=~"hit|semantic"}`` over all its ``strata_cache_requests_total``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from strata.observability.lean import CounterChild, LeanCounter

RESULTS = ("hit", "semantic", "miss", "bypass")  # bypass: not cacheable (sampled, or answered by a fallback)


@dataclass(frozen=True, slots=True)
class RouteCacheMetrics:
    """One route's children, bound once (the request path does no label lookups)."""

    results: dict[str, CounterChild]
    stores: CounterChild


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = LeanCounter(
            "strata_cache_requests", "Cacheable requests by route and result (hit|semantic|miss|bypass)",
            ["route", "result"], registry=r,
        )  # fmt: skip
        self.stores = LeanCounter("strata_cache_stores", "Answers kept by the response cache", ["route"], registry=r)
        self.entries = Gauge("strata_cache_entries", "Answers kept in this gateway's memory", ["route"], registry=r)
        self.bytes = Gauge("strata_cache_bytes", "Bytes of answers kept in this gateway's memory", ["route"],
                           registry=r)  # fmt: skip
        self.evictions = Gauge(
            "strata_cache_evictions", "Answers dropped from memory to stay within the bounds, since start", ["route"],
            registry=r,
        )  # fmt: skip
        self.errors = Gauge(
            "strata_cache_errors", "Failed or slow reads and writes of the shared (Redis) cache, since start",
            registry=r,
        )  # fmt: skip

    def for_route(self, route: str) -> RouteCacheMetrics:
        return RouteCacheMetrics(
            {result: self.requests.labels(route=route, result=result) for result in RESULTS},
            self.stores.labels(route=route),
        )
