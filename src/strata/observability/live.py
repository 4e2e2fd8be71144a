"""A short, bounded history of the app's own metrics, for the dashboard's live charts.

Every ``interval_s`` a background task reads the app's metrics (the numbers a scrape would show,
read from the metric children directly) and computes one point: it compares the new sample with
the one ``window`` samples before it, giving rates (requests, tokens per second) and latency
percentiles over that window as Prometheus' ``rate`` and ``histogram_quantile`` would. The last
``keep`` points are kept. Nothing here touches the request path: the cost is one read and one point
per interval, and a dashboard poll only copies the points it has not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from strata.lifetimes import task_running
from strata.observability.metrics import STAGES, Metrics

log = logging.getLogger(__name__)

K = TypeVar("K")
QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}

# (bounds, cumulative counts per bound with +Inf last)
Buckets = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class Sample:
    """The metrics' cumulative values at one moment, keyed by label values."""

    at: float  # unix time
    stage_buckets: dict[tuple[str, str], Buckets] = field(default_factory=dict)  # (deployment, stage)
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)  # (deployment, direction)
    requests: dict[str, float] = field(default_factory=dict)  # route -> answered
    errors: dict[str, float] = field(default_factory=dict)  # route -> answered with an error
    queue_depth: dict[str, float] = field(default_factory=dict)  # deployment -> waiting now
    running: dict[str, float] = field(default_factory=dict)  # deployment -> sequences decoding now


def read_sample(metrics: Metrics, at: float) -> Sample:
    """The live charts' families, read from their children directly: no text rendering, no sample
    objects, so a read costs microseconds per series rather than a scrape's milliseconds."""
    sample = Sample(at)
    bounds = (*metrics.stage_latency.bounds, math.inf)
    for (deployment, stage), histogram in metrics.stage_latency.items():
        counts, _ = histogram.snapshot()
        sample.stage_buckets[(deployment, stage)] = (bounds, tuple(itertools.accumulate(counts, initial=0))[1:])
    for (deployment, direction), counter in metrics.tokens.items():
        sample.tokens[(deployment, direction)] = counter.value
    for totals, counters in ((sample.requests, metrics.requests), (sample.errors, metrics.errors)):
        for (route, _), counter in counters.items():
            totals[route] = totals.get(route, 0.0) + counter.value
    for gauges, gauge in ((sample.queue_depth, metrics.queue_depth), (sample.running, metrics.running)):
        for family in gauge.collect():
            for s in family.samples:
                gauges[s.labels["deployment"]] = s.value
    return sample


def quantile(q: float, bounds: Iterable[float], cumulative: Iterable[float]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts (the last bound is +Inf):
    linear within the bucket holding the rank; a rank in the +Inf bucket answers the highest finite
    bound. None when the buckets hold no observation."""
    pairs = list(zip(bounds, cumulative, strict=True))
    if not pairs or pairs[-1][1] <= 0:
        return None
    rank = q * pairs[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _increase(now: Mapping[K, float], before: Mapping[K, float], key: K) -> float:
    current, previous = now.get(key, 0.0), before.get(key, 0.0)
    # A counter that went down was reset (a restarted process): count from zero, as rate() does.
    return current - previous if current >= previous else current


def point(before: Sample, now: Sample, metered_routes: Collection[str]) -> dict[str, object]:
    """The live values between two samples: per route requests and errors per second; per deployment
    tokens per second, queue depth and running sequences (now), and each stage's percentiles."""
    elapsed = max(now.at - before.at, 1e-9)
    routes = {
        route: {
            "requests_per_s": _rate(_increase(now.requests, before.requests, route), elapsed),
            "errors_per_s": _rate(_increase(now.errors, before.errors, route), elapsed),
        }
        for route in now.requests
        if route in metered_routes
    }
    names = {d for d, _ in now.stage_buckets} | set(now.queue_depth) | {d for d, _ in now.tokens}
    deployments: dict[str, object] = {}
    for name in sorted(names):
        stages: dict[str, dict[str, float | None]] = {}
        for stage in STAGES:
            current = now.stage_buckets.get((name, stage))
            if current is None:
                continue
            les, counts = current
            previous = before.stage_buckets.get((name, stage), (les, (0.0,) * len(counts)))[1]
            window = [c - p for c, p in zip(counts, previous, strict=True)]
            if window and window[-1] < 0:  # reset: the window is everything since
                window = list(counts)
            if not window or window[-1] <= 0:
                continue  # nothing passed the stage in the window: left out, which keeps idle points small
            values: dict[str, float | None] = {label: _ms(quantile(q, les, window)) for label, q in QUANTILES.items()}
            values["per_s"] = _rate(window[-1], elapsed)
            stages[stage] = values
        deployments[name] = {
            "tokens_in_per_s": _rate(_increase(now.tokens, before.tokens, (name, "in")), elapsed),
            "tokens_out_per_s": _rate(_increase(now.tokens, before.tokens, (name, "out")), elapsed),
            "queue_depth": now.queue_depth.get(name, 0.0),
            "running": now.running.get(name, 0.0),
            "stages": stages,
        }
    return {"at": round(now.at, 3), "window_s": round(elapsed, 3), "routes": routes, "deployments": deployments}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _rate(increase: float, elapsed_s: float) -> float:
    return round(increase / elapsed_s, 3)


class LiveSeries:
    """The ring of points and the task that fills it (started and stopped with the gateway). Each point
    is computed once, when its sample is read; a poll only picks the points newer than it has."""

    def __init__(
        self,
        metrics: Metrics,
        metered_routes: Collection[str] = (),  # the routes whose throughput is shown (inference work)
        *,
        interval_s: float = 2.0,
        keep: int = 450,  # 15 minutes at the default interval
        window: int = 5,  # each point spans 5 intervals (10 s): steadier percentiles than one interval
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.metered_routes = frozenset(metered_routes)
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=window)  # the oldest is one window before the next
        self.kept: deque[dict[str, object]] = deque(maxlen=keep)
        self._clock = clock

    def take(self) -> None:
        sample = read_sample(self.metrics, self._clock())
        if self.samples:
            self.kept.append(point(self.samples[0], sample, self.metered_routes))
        self.samples.append(sample)

    def points(self, since: float = 0.0) -> list[dict[str, object]]:
        """Points whose window ends after ``since`` (unix time), oldest first."""
        return [p for p in self.kept if p["at"] > since]  # type: ignore[operator]

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Sample for as long as the block runs."""
        return task_running(self._run, "live-metrics")

    async def _run(self) -> None:
        while True:
            try:
                self.take()
            except Exception:  # boundary: a faulty read must not end the sampling for good
                log.exception("reading the metrics for the live series failed")
            await asyncio.sleep(self.interval_s)
