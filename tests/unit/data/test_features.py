"""The streaming feature store against a brute-force recomputation, plus late events and eviction."""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.data.features import FeatureStore, RateSpec, WindowSpec

SPEC = WindowSpec(
    columns=("x", "speed", "heading"),
    history=6,
    windows_s=(1.0, 3.0),
    mean_columns=("speed",),
    rates=(RateSpec("heading", 1.0, angular=True), RateSpec("x", 3.0)),
    allowed_lateness_s=1.5,
    idle_ttl_s=1e9,
    max_keys=8,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def brute_force(batches: list[list[tuple[str, float, tuple[float, float, float]]]]) -> dict[str, list[float]]:
    """Keep every accepted event per key, then compute each feature from its definition."""
    accepted: dict[str, dict[float, tuple[float, ...]]] = {}
    for batch in batches:
        newest = {key: max(events) for key, events in accepted.items()}
        for key, t, values in batch:
            if key in newest and t < newest[key] - SPEC.allowed_lateness_s:
                continue  # late
            accepted.setdefault(key, {}).setdefault(t, values)  # a repeated timestamp keeps the first
    features: dict[str, list[float]] = {}
    for key, events in accepted.items():
        held = sorted(events.items())[-SPEC.history :]
        t_last = held[-1][0]
        row = [float(len(held))]
        for w in SPEC.windows_s:
            window = [values for t, values in held if t >= t_last - w]
            row.append(sum(values[1] for values in window) / len(window))
        for rate in SPEC.rates:
            column = SPEC.columns.index(rate.column)
            window = [(t, values) for t, values in held if t >= t_last - rate.window_s]
            (t0, first), (t1, last) = window[0], window[-1]
            delta = last[column] - first[column]
            if rate.angular:
                delta = (delta + math.pi) % (2 * math.pi) - math.pi
            row.append(delta / (t1 - t0) if t1 > t0 else 0.0)
        features[key] = row
    return features


events = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 40).map(lambda tick: tick * 0.25),  # on a grid, so repeated timestamps happen
    st.tuples(st.floats(-100, 100), st.floats(0, 40), st.floats(-math.pi, math.pi)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(events, max_size=12), min_size=1, max_size=6))
def test_windows_match_a_brute_force_recomputation(batches: list[list[tuple[str, float, tuple[float, ...]]]]) -> None:
    store = FeatureStore(SPEC, clock=Clock())
    for batch in batches:
        store.ingest([e[0] for e in batch], np.array([e[1] for e in batch]), np.array([e[2] for e in batch]))
    expected = brute_force(batches)  # type: ignore[arg-type]
    assert sorted(expected) == sorted(store.all_slots()[0])
    for key, row in expected.items():
        got = store.get(key)
        assert got is not None
        np.testing.assert_allclose(got.values, row, rtol=1e-9, atol=1e-9)
        assert got.t_last == max(t for k, t, _ in functools.reduce(operator.iadd, batches, []) if k == key)
        assert len(got.history) == row[0]
        assert np.all(np.diff(got.history_t) > 0)  # held oldest first, no repeats


def test_late_events_beyond_the_watermark_are_dropped_and_counted() -> None:
    store = FeatureStore(SPEC, clock=Clock())
    store.ingest(["a", "a"], np.array([10.0, 11.0]), np.array([[0, 10, 0], [1, 20, 0]]))
    # 9.6 is out of order but inside the watermark (11 - 1.5); 9.0 is older than it.
    result = store.ingest(["a", "a"], np.array([9.6, 9.0]), np.array([[5, 30, 0], [6, 99, 0]]))
    assert (result.accepted, result.late, result.duplicate) == (1, 1, 0)
    got = store.get("a")
    assert got is not None
    assert list(got.history_t) == [9.6, 10.0, 11.0]
    assert got.value(SPEC, "mean_speed_1s") == pytest.approx(15.0)  # 10.0 and 11.0
    assert got.value(SPEC, "mean_speed_3s") == pytest.approx(20.0)  # all three


def test_the_newest_events_are_held_whatever_the_arrival_order() -> None:
    store = FeatureStore(SPEC, clock=Clock())
    times = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 0.5, 7.0])
    store.ingest(["k"] * len(times), times, np.zeros((len(times), 3)))
    got = store.get("k")
    assert got is not None
    assert list(got.history_t) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_idle_keys_are_evicted_and_memory_is_bounded() -> None:
    clock = Clock()
    spec = WindowSpec(columns=("x",), history=4, idle_ttl_s=10.0, max_keys=3)
    store = FeatureStore(spec, clock=clock)
    size = store.nbytes()
    store.ingest(["a", "b"], np.array([0.0, 0.0]), np.zeros((2, 1)))
    clock.now = 5.0
    store.ingest(["b"], np.array([1.0]), np.zeros((1, 1)))
    clock.now = 12.0  # a has been idle 12 s, b 7 s
    result = store.ingest(["c"], np.array([0.0]), np.zeros((1, 1)))
    assert result.evicted == 1
    assert "a" not in store
    assert "b" in store
    clock.now = 13.0
    store.ingest(["d", "e"], np.array([0.0, 0.0]), np.zeros((2, 1)))  # full: the least recent (b) goes
    assert sorted(store.all_slots()[0]) == ["c", "d", "e"]
    assert store.nbytes() == size
    assert len(store) == 3
    assert store.stats.evicted == 2


def test_non_finite_input_is_refused() -> None:
    store = FeatureStore(SPEC, clock=Clock())
    with pytest.raises(ValueError, match="finite"):
        store.ingest(["a"], np.array([math.nan]), np.zeros((1, 3)))
    assert len(store) == 0


def test_held_slots_follow_inserts_and_evictions() -> None:
    clock = Clock()
    store = FeatureStore(WindowSpec(columns=("x",), history=4, idle_ttl_s=5.0, max_keys=4), clock=clock)
    store.ingest(["a", "b"], np.array([0.0, 0.0]), np.zeros((2, 1)))
    assert sorted(store.held_slots().tolist()) == sorted(store.slots(["a", "b"]).tolist())
    clock.now = 10.0
    store.ingest(["c"], np.array([1.0]), np.zeros((1, 1)))
    assert store.held_slots().tolist() == store.slots(["c"]).tolist()
