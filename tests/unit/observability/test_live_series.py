"""The dashboard's live series: percentiles as histogram_quantile computes them, rates over a window of
samples, counter resets, and the ``since`` filter, read from a real metrics registry."""

from __future__ import annotations

import math

import pytest

from strata.observability.live import LiveSeries, quantile, read_sample
from strata.observability.metrics import Metrics

INF = math.inf


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.125),  # rank 5 of 10: a quarter into the (0.1, 0.2] bucket, which holds ranks 4..8
        (0.25, 0.0625),  # rank 2.5 of the 4 in the first bucket (0, 0.1]: linear from 0
        (0.95, 0.2),  # rank 9.5 lands in +Inf: the highest finite bound
    ],
)
def test_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    bounds = (0.1, 0.2, INF)
    cumulative = (4.0, 8.0, 10.0)
    assert quantile(q, bounds, cumulative) == pytest.approx(expected)


def test_quantile_of_nothing_is_none() -> None:
    assert quantile(0.5, (0.1, INF), (0.0, 0.0)) is None
    assert quantile(0.5, (), ()) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _series(metrics: Metrics, clock: Clock, window: int = 2) -> LiveSeries:
    return LiveSeries(metrics, {"/v1/chat/completions"}, interval_s=1.0, window=window, clock=clock)


def test_points_are_rates_and_percentiles_over_the_window() -> None:
    metrics, clock = Metrics(), Clock()
    chat = metrics.for_deployment("chat")
    requests = metrics.requests.labels(route="/v1/chat/completions", status="200")
    admin = metrics.requests.labels(route="/v1/admin/deployments", status="200")
    live = _series(metrics, clock)
    live.take()
    for _ in range(10):
        requests.inc()
        admin.inc()
        chat.tokens_out.inc(3)
        chat.inference.observe(0.004)  # in the (0.0025, 0.005] bucket
    chat.queue_depth.set(7)
    clock.now += 2.0
    live.take()
    [point] = live.points()
    assert point["at"] == 1002.0
    assert point["window_s"] == 2.0
    assert point["routes"] == {"/v1/chat/completions": {"requests_per_s": 5.0, "errors_per_s": 0.0}}  # no admin
    chat_point = point["deployments"]["chat"]  # type: ignore[index]
    assert chat_point["tokens_out_per_s"] == 15.0
    assert chat_point["queue_depth"] == 7.0
    inference = chat_point["stages"]["inference"]
    assert 2.5 < inference["p50_ms"] <= 5.0
    assert inference["per_s"] == 5.0
    assert "parse" not in chat_point["stages"]  # nothing parsed in the window: left out


def test_each_point_spans_window_samples_and_since_filters() -> None:
    metrics, clock = Metrics(), Clock()
    counter = metrics.requests.labels(route="/v1/chat/completions", status="200")
    live = _series(metrics, clock, window=2)
    for _ in range(4):
        live.take()
        counter.inc(4)
        clock.now += 1.0
    points = live.points()
    assert [p["at"] for p in points] == [1001.0, 1002.0, 1003.0]
    assert [p["window_s"] for p in points] == [1.0, 2.0, 2.0]  # the first has only one interval behind it
    assert all(p["routes"]["/v1/chat/completions"]["requests_per_s"] == 4.0 for p in points)  # type: ignore[index]
    assert [p["at"] for p in live.points(since=1002.0)] == [1003.0]


def test_a_reset_counter_counts_from_zero() -> None:
    metrics, clock = Metrics(), Clock()
    live = _series(metrics, clock, window=1)
    counter = metrics.requests.labels(route="/v1/chat/completions", status="200")
    counter.inc(100)
    live.take()
    # A restarted process: a fresh registry whose counter starts again.
    fresh = Metrics()
    fresh.requests.labels(route="/v1/chat/completions", status="200").inc(3)
    live.metrics = fresh
    clock.now += 1.0
    live.take()
    [point] = live.points()
    assert point["routes"]["/v1/chat/completions"]["requests_per_s"] == 3.0  # type: ignore[index]


def test_the_ring_is_bounded() -> None:
    metrics, clock = Metrics(), Clock()
    live = LiveSeries(metrics, set(), keep=5, window=3, clock=clock)
    for _ in range(20):
        live.take()
        clock.now += 1
    assert len(live.samples) == 3
    assert [p["at"] for p in live.points()] == [1015.0, 1016.0, 1017.0, 1018.0, 1019.0]


def test_read_sample_reads_the_gauges() -> None:
    metrics = Metrics()
    deployment = metrics.for_deployment("embeddings")
    deployment.running.set(2)
    deployment.queue_depth.set(1)
    sample = read_sample(metrics, 5.0)
    assert sample.running == {"embeddings": 2.0}
    assert sample.queue_depth == {"embeddings": 1.0}
    bounds, counts = sample.stage_buckets[("embeddings", "inference")]
    assert bounds[-1] == INF
    assert counts[-1] == 0.0
