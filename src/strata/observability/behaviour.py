"""Behaviour monitoring per route: input drift, output length and the requests guard rates divide by.

On the request path: an embedding route offers its own vectors, a predict route its numeric inputs,
a generation route the text of its prompt; each offer is a coin toss (``sample_rate``) and, when
sampled, a ``put_nowait`` on a bounded queue: a full queue drops the sample and counts it, it never
waits. One background task takes the samples, embeds the texts through the route's ``embed_with``
embedding route (like any request to it: its batching, its admission), and adds the vectors to the
route's windows (drift.py); each new score is set on ``strata_drift_score{route}``.

A finished inference request costs a dictionary lookup and a counter (``strata_route_requests``:
the denominator of the guard-hit rate; ``strata_guard_decisions`` counts the hits) and, for a
generation route, one histogram observation (``strata_output_tokens``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from strata.errors import SpecError
from strata.lifetimes import task_running
from strata.observability.drift import RouteWindows
from strata.observability.lean import CounterChild, HistogramChild, LeanCounter, LeanHistogram
from strata.observability.metrics import Metrics
from strata.record import RequestRecord
from strata.spec.observability import DriftSpec

log = logging.getLogger(__name__)

Embed = Callable[[str, str], Awaitable[Any]]  # embed(route, text): the route's output for one text
OUTPUT_TOKEN_BUCKETS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True, slots=True)
class _Sample:
    route: str
    vector: np.ndarray | None = None  # an embedding or a feature vector, ready to add
    text: str | None = None  # a prompt still to embed


class BehaviourMonitor:
    def __init__(self, spec: DriftSpec, metrics: Metrics, tasks: dict[str, str], embed: Embed) -> None:
        """``tasks``: each route's task (embed, generate, predict); ``embed`` asks an embedding route."""
        self.spec = spec
        self.embed = embed
        r = metrics.registry
        self.score = Gauge(
            "strata_drift_score", "Input drift: PSI of the current window against the reference (NaN until both "
            "are full)", ["route"], registry=r,
        )  # fmt: skip
        self.samples = Counter(
            "strata_drift_samples", "Input samples by outcome: used, dropped (queue full) or failed (not embedded)",
            ["route", "outcome"], registry=r,
        )  # fmt: skip
        requests = LeanCounter(
            "strata_route_requests", "Finished inference requests per route (any status)", ["route"], registry=r
        )
        output = LeanHistogram(
            "strata_output_tokens", "Output length of answered generation requests, in tokens", ["route"],
            buckets=OUTPUT_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        # Children bound once per route: the request path does no label lookups.
        self._per_route: dict[str, tuple[CounterChild, HistogramChild | None]] = {
            name: (requests.labels(route=name), output.labels(route=name) if task == "generate" else None)
            for name, task in tasks.items()
        }
        self._embed_with: dict[str, str | None] = {}
        self._windows: dict[str, RouteWindows] = {}
        for index, watched in enumerate(spec.routes):
            _check_route(index, watched.route, watched.embed_with, tasks)
            self._embed_with[watched.route] = watched.embed_with
            self._windows[watched.route] = RouteWindows(
                reference_samples=spec.reference_samples, window_samples=spec.window_samples,
                projections=spec.projections, bins=spec.bins,
            )  # fmt: skip
            self.score.labels(route=watched.route).set(math.nan)
            for outcome in ("used", "dropped", "failed"):
                self.samples.labels(route=watched.route, outcome=outcome)
        self._queue: asyncio.Queue[_Sample] = asyncio.Queue(maxsize=spec.max_queue)
        self._rate = spec.sample_rate

    # On the request path

    def watches(self, route: str) -> bool:
        return route in self._windows

    def offer_vectors(self, route: str, vectors: Sequence[np.ndarray]) -> None:
        if route in self._windows:
            for vector in vectors:
                if self._rate >= 1.0 or random.random() < self._rate:
                    self._put(_Sample(route, vector=np.asarray(vector, dtype=np.float32)))

    def offer_inputs(self, route: str, inputs: Sequence[Any]) -> None:
        """A predict route's inputs: each number or list of numbers is a feature vector; others are skipped."""
        if route in self._windows:
            self.offer_vectors(route, [v for v in (_features(i) for i in inputs) if v is not None])

    def offer_text(self, route: str, text: str) -> None:
        if route in self._windows and (self._rate >= 1.0 or random.random() < self._rate):
            self._put(_Sample(route, text=text))

    def _put(self, sample: _Sample) -> None:
        try:
            self._queue.put_nowait(sample)
        except asyncio.QueueFull:
            self.samples.labels(route=sample.route, outcome="dropped").inc()

    def finish(self, record: RequestRecord) -> None:
        children = self._per_route.get(record.model or "")
        if children is None:
            return  # not a route of this app (a 404 names any model): no label for it
        requests, output = children
        requests.inc()
        if output is not None and 0 < record.status < 400:
            output.observe(record.tokens_out)

    # Off the request path

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return task_running(self._run if self._windows else None, "behaviour-monitor")

    async def _run(self) -> None:
        while True:
            sample = await self._queue.get()
            try:
                vector = sample.vector if sample.vector is not None else await self._embedded(sample)
            except Exception as error:  # boundary: a shed or failed embedding loses one sample, counted
                self.samples.labels(route=sample.route, outcome="failed").inc()
                log.debug("drift sample of %s not embedded: %s", sample.route, error)
                continue
            self.samples.labels(route=sample.route, outcome="used").inc()
            score = self._windows[sample.route].add(vector)
            if score is not None:
                self.score.labels(route=sample.route).set(score)

    async def _embedded(self, sample: _Sample) -> np.ndarray:
        embed_with = self._embed_with[sample.route]
        assert embed_with is not None  # _check_route: a route that offers texts has an embedding route
        assert sample.text is not None
        output = await self.embed(embed_with, sample.text)
        return np.asarray(getattr(output, "vector", output), dtype=np.float32)


def _features(value: Any) -> np.ndarray | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return np.array([value], dtype=np.float32)
    if isinstance(value, list) and value and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                 for v in value):  # fmt: skip
        return np.array(value, dtype=np.float32)
    return None


def _check_route(index: int, route: str, embed_with: str | None, tasks: dict[str, str]) -> None:
    where = f"observability.drift.routes[{index}]"
    if route not in tasks:
        raise SpecError(f"{where}.route: no route '{route}' in this app")
    if tasks[route] == "generate" and embed_with is None:
        raise SpecError(f"{where}.embed_with: route '{route}' generates text; name an embedding route to embed it")
    if embed_with is not None and tasks.get(embed_with) != "embed":
        raise SpecError(f"{where}.embed_with: '{embed_with}' is not an embedding route of this app")
