"""Counters and histograms for the request path, exported in Prometheus' own format.

prometheus_client's ``Histogram.observe`` walks its buckets in Python and takes a lock per bucket
and per sum: about 3 us per observation, and a request makes six or more. These keep one lock and
one list per labelled child, find the bucket with ``bisect`` (C), and are read by a collector at
scrape time, so what a scrape sees is exactly what prometheus_client would have shown (cumulative
buckets, ``_sum``, ``_count``, ``_total``). Children are bound once, as the request path requires.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString


class HistogramChild:
    __slots__ = ("_bounds", "_counts", "_exemplars", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...], *, exemplars: bool = False) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()  # decode threads observe too
        # Per bucket, the latest (trace id, value, unix time): OpenMetrics exemplars, so a latency
        # bucket on a dashboard links to one request's trace. None for histograms without them.
        self._exemplars: list[tuple[int, float, float] | None] | None = (
            [None] * len(self._counts) if exemplars else None
        )

    def observe(self, value: float) -> None:
        index = bisect_left(self._bounds, value)  # le: a value equal to a bound falls in that bucket
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def observe_traced(self, value: float, trace_id: int) -> None:
        """``observe`` that also keeps ``trace_id`` (W3C, 128 bits) as its bucket's exemplar (the latest
        one wins; formatted only at scrape time)."""
        index = bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value
            if self._exemplars is not None and trace_id:
                self._exemplars[index] = (trace_id, value, time.time())

    def snapshot(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._counts), self._sum

    def exemplars(self) -> list[tuple[int, float, float] | None]:
        with self._lock:
            return list(self._exemplars) if self._exemplars is not None else [None] * len(self._counts)


class CounterChild:
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._value = 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        return self._value


ChildT = TypeVar("ChildT")


class _Family(Collector, Generic[ChildT]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        new_child: Callable[[], ChildT],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._new_child = new_child
        self._children: dict[tuple[str, ...], ChildT] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, **labels: str) -> ChildT:
        """The child for these label values, made on first use (bind it once; the request path holds it)."""
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}, got {sorted(labels)}")
        key = tuple(str(labels[name]) for name in self.labelnames)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
            return child

    def items(self) -> list[tuple[tuple[str, ...], ChildT]]:
        """Every child with its label values (a copy: safe while requests add children)."""
        with self._lock:
            return list(self._children.items())


class LeanHistogram(_Family[HistogramChild]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
        exemplars: bool = False,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        self.bounds = bounds
        super().__init__(name, documentation, labelnames, registry, lambda: HistogramChild(bounds, exemplars=exemplars))

    def collect(self) -> Iterator[Metric]:
        # Exemplars reach only an OpenMetrics scrape (Accept: application/openmetrics-text); the
        # Prometheus text format leaves them out.
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self.items():
            counts, total = child.snapshot()
            cumulative, buckets = 0, list[tuple[str, float] | tuple[str, float, Exemplar]]()
            for bound, count, kept in zip((*self.bounds, float("inf")), counts, child.exemplars(), strict=True):
                cumulative += count
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                if kept is None:
                    buckets.append((le, cumulative))
                else:
                    trace_id, value, at = kept
                    buckets.append((le, cumulative, Exemplar({"trace_id": f"{trace_id:032x}"}, value, at)))
            family.add_metric(list(key), buckets, total)
        yield family


class LeanCounter(_Family[CounterChild]):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry
    ) -> None:
        super().__init__(name, documentation, labelnames, registry, CounterChild)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self.items():
            family.add_metric(list(key), child.value)
        yield family
