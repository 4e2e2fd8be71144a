"""A streaming feature store: per-key sliding windows over timestamped numeric events.

Events arrive in batches (``ingest``); each batch updates, for every key it touches, a buffer of
the key's ``history`` newest events by timestamp and then recomputes that key's features once.
Reads (``get``, ``matrix``) only index precomputed rows, so a feature read is O(1) per key and
never waits on computation.

Semantics, which the tests check against a brute-force recomputation:

* Per key, the store holds the ``history`` newest events *by event time*, whatever their arrival
  order. An event with a timestamp already held for its key is a duplicate and is dropped.
* Watermark (micro-batch, as in Spark Structured Streaming): an event is *late* and dropped when
  its timestamp is older than the key's newest held timestamp minus ``allowed_lateness_s``, the
  newest timestamp taken as it was *before* the batch. Events inside the watermark are placed in
  time order even when they arrive out of order.
* A window of ``w`` seconds covers the held events with ``t >= t_newest - w`` (at most ``history``).
  Means are over the events in the window; a rate is ``(last - first) / (t_last - t_first)`` over
  the window (angles wrapped to (-pi, pi]), 0 when the window holds one event.
* Memory is bounded: at most ``max_keys`` keys are held in preallocated arrays. Keys idle (no
  event) for ``idle_ttl_s`` of processing time are evicted; when the store is full, the
  least recently updated key is evicted to make room (a batch may name at most ``max_keys`` keys).

All state is numpy arrays indexed by a slot per key, so a batch of events from thousands of keys
is folded in with a handful of vectorised operations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RateSpec:
    """A rate of change of one column over one window, e.g. heading rate over 1 s."""

    column: str
    window_s: float
    angular: bool = False  # differences wrapped to (-pi, pi]: a heading going past pi is not a spin


@dataclass(frozen=True)
class WindowSpec:
    """What the store keeps per key and which features it derives."""

    columns: tuple[str, ...]
    history: int = 32
    """Events held per key (newest by event time); also the most any window can cover."""
    windows_s: tuple[float, ...] = (1.0, 5.0)
    mean_columns: tuple[str, ...] = ()
    """Columns averaged over each window in ``windows_s``."""
    rates: tuple[RateSpec, ...] = ()
    allowed_lateness_s: float = 1.0
    idle_ttl_s: float = 30.0
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        if self.history < 2 or self.max_keys < 1:
            raise ValueError("history must be >= 2 and max_keys >= 1")
        unknown = {*self.mean_columns, *(rate.column for rate in self.rates)} - set(self.columns)
        if unknown:
            raise ValueError(f"unknown feature column(s): {sorted(unknown)}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the derived features, in the order of ``WindowFeatures.values``."""
        means = tuple(f"mean_{c}_{w:g}s" for w in self.windows_s for c in self.mean_columns)
        rates = tuple(f"rate_{r.column}_{r.window_s:g}s" for r in self.rates)
        return ("count", *means, *rates)


@dataclass(frozen=True)
class WindowFeatures:
    """One key's features as of its newest event."""

    key: str
    t_last: float
    history_t: FloatArray  # (n,) timestamps, oldest first, n <= history
    history: FloatArray  # (n, columns) the held events, oldest first
    values: FloatArray  # (len(feature_names),) derived features

    def value(self, spec: WindowSpec, name: str) -> float:
        return float(self.values[spec.feature_names.index(name)])


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    late: int
    duplicate: int
    evicted: int


@dataclass
class StoreStats:
    accepted: int = 0
    late: int = 0
    duplicate: int = 0
    evicted: int = 0
    batches: int = 0


class FeatureStore:
    """Per-key sliding windows with a watermark and bounded memory (see the module docstring)."""

    def __init__(self, spec: WindowSpec, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        n, h, c = spec.max_keys, spec.history, len(spec.columns)
        self._t = np.full((n, h), -np.inf)  # per slot, oldest first; -inf marks an empty cell
        self._v = np.zeros((c, n, h))  # column-major: a feature reads its column's rows, not every column
        self._features = np.zeros((n, len(spec.feature_names)))
        self._last_update = np.zeros(n)
        self._held = np.zeros(n, dtype=bool)  # which slots hold a key: the fleet in one array read
        self._slots: dict[str, int] = {}
        self._keys: list[str | None] = [None] * n
        self._free = list(range(n - 1, -1, -1))
        self._column = {name: index for index, name in enumerate(spec.columns)}
        self._last_sweep = clock()
        self.stats = StoreStats()

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    # -- writes -------------------------------------------------------------------------------

    def ingest(self, keys: Sequence[str], t: FloatArray, values: FloatArray) -> IngestResult:
        """Fold in a batch: ``keys[i]`` at time ``t[i]`` with ``values[i]`` (one value per column)."""
        now = self._clock()
        evicted = self._sweep(now)
        if len(keys) == 0:
            return IngestResult(0, 0, 0, evicted)
        t = np.asarray(t, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(len(keys), len(self.spec.columns))
        if not (np.isfinite(t).all() and np.isfinite(values).all()):
            raise ValueError("timestamps and values must be finite (validate events before ingesting them)")
        if len(set(keys)) > self.spec.max_keys:
            raise ValueError(f"a batch names more than max_keys={self.spec.max_keys} keys")
        before = self.stats.evicted
        slots = self.slots(keys)
        self._last_update[slots[slots >= 0]] = now  # so that making room for a new key never evicts one of this batch
        for index in np.flatnonzero(slots < 0).tolist():
            slots[index] = self._slot_for(keys[index], now)
        evicted += self.stats.evicted - before
        watermark = self._t[slots, -1] - self.spec.allowed_lateness_s  # -inf for a new key
        on_time = t >= watermark
        late = int((~on_time).sum())
        slots, t, values = slots[on_time], t[on_time], values[on_time]
        duplicate = self._fold(slots, t, values) if len(slots) else 0
        touched = np.unique(slots)
        self._last_update[touched] = now
        self._recompute(touched)
        accepted = len(slots) - duplicate
        self.stats.accepted += accepted
        self.stats.late += late
        self.stats.duplicate += duplicate
        self.stats.batches += 1
        return IngestResult(accepted, late, duplicate, evicted)

    def _slot_for(self, key: str, now: float) -> int:
        slot = self._slots.get(key)
        if slot is not None:  # a key new to the store seen twice in one batch
            return slot
        if not self._free:
            self._evict_lru()
        slot = self._free.pop()
        self._held[slot] = True
        self._slots[key] = slot
        self._keys[slot] = key
        self._last_update[slot] = now
        return slot

    def _fold(self, slots: NDArray[np.int64], t: FloatArray, values: FloatArray) -> int:
        """The common case, a key's one event newer than all it holds, appends by shifting its row;
        the rest (several events for a key, out of order, duplicates) take the general merge."""
        counts = np.bincount(slots, minlength=self.spec.max_keys)[slots]
        simple = (counts == 1) & (t > self._t[slots, -1])
        if simple.all():
            self._append(slots, t, values)
            return 0
        self._append(slots[simple], t[simple], values[simple])
        return self._merge(slots[~simple], t[~simple], values[~simple]) if (~simple).any() else 0

    def _append(self, slots: NDArray[np.int64], t: FloatArray, values: FloatArray) -> None:
        self._t[slots, :-1] = self._t[slots, 1:]
        self._t[slots, -1] = t
        for column in range(len(self.spec.columns)):
            plane = self._v[column]
            plane[slots, :-1] = plane[slots, 1:]
            plane[slots, -1] = values[:, column]

    def _merge(self, slots: NDArray[np.int64], t: FloatArray, values: FloatArray) -> int:
        """Merge new events into their slots' buffers, keeping the ``history`` newest by time."""
        h = self.spec.history
        touched, inverse, counts = np.unique(slots, return_inverse=True, return_counts=True)
        width = h + int(counts.max())
        # Lay each new event in its slot's row after the held events: rank within its slot.
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(starts, counts)
        merged_t = np.full((len(touched), width), -np.inf)
        merged_v = np.zeros((values.shape[1], len(touched), width))
        merged_t[:, :h] = self._t[touched]
        merged_v[:, :, :h] = self._v[:, touched]
        merged_t[inverse, h + rank] = t
        merged_v[:, inverse, h + rank] = values.T
        # Held events come first, so a stable sort keeps the held copy of a duplicate timestamp.
        by_time = np.argsort(merged_t, axis=1, kind="stable")
        merged_t = np.take_along_axis(merged_t, by_time, axis=1)
        merged_v = np.take_along_axis(merged_v, by_time[None], axis=2)
        repeated = np.zeros_like(merged_t, dtype=bool)
        repeated[:, 1:] = (merged_t[:, 1:] == merged_t[:, :-1]) & np.isfinite(merged_t[:, 1:])
        duplicate = int(repeated.sum())
        if duplicate:
            merged_t[repeated] = -np.inf
            by_time = np.argsort(merged_t, axis=1, kind="stable")
            merged_t = np.take_along_axis(merged_t, by_time, axis=1)
            merged_v = np.take_along_axis(merged_v, by_time[None], axis=2)
        self._t[touched] = merged_t[:, -h:]
        self._v[:, touched] = merged_v[:, :, -h:]
        return duplicate

    def _recompute(self, slots: NDArray[np.int64]) -> None:
        t = self._t[slots]
        held = np.isfinite(t)
        newest = t[:, -1:]
        columns: list[FloatArray] = [held.sum(axis=1).astype(np.float64)]
        in_window = {
            w: held & (t >= newest - w) for w in {*self.spec.windows_s, *(r.window_s for r in self.spec.rates)}
        }
        planes = {
            c: self._v[self._column[c], slots] for c in {*self.spec.mean_columns, *(r.column for r in self.spec.rates)}
        }
        for w in self.spec.windows_s:
            mask = in_window[w]
            size = np.maximum(mask.sum(axis=1), 1)
            columns += [np.where(mask, planes[c], 0.0).sum(axis=1) / size for c in self.spec.mean_columns]
        for rate in self.spec.rates:
            columns.append(_rate(t, planes[rate.column], in_window[rate.window_s], rate.angular))
        self._features[slots] = np.stack(columns, axis=1)

    # -- eviction -----------------------------------------------------------------------------

    def _sweep(self, now: float) -> int:
        """Evict keys idle past their TTL; runs at most once per second of processing time."""
        if now - self._last_sweep < 1.0:
            return 0
        self._last_sweep = now
        return self.evict_idle(now)

    def evict_idle(self, now: float | None = None) -> int:
        now = self._clock() if now is None else now
        idle = [key for key, slot in self._slots.items() if now - self._last_update[slot] > self.spec.idle_ttl_s]
        for key in idle:
            self._evict(key)
        return len(idle)

    def _evict_lru(self) -> None:
        slots = np.fromiter(self._slots.values(), dtype=np.int64)
        victim = self._keys[int(slots[np.argmin(self._last_update[slots])])]
        assert victim is not None
        self._evict(victim)

    def _evict(self, key: str) -> None:
        slot = self._slots.pop(key)
        self._keys[slot] = None
        self._t[slot] = -np.inf
        self._features[slot] = 0.0
        self._free.append(slot)
        self._held[slot] = False
        self.stats.evicted += 1

    # -- reads (O(1) per key) -----------------------------------------------------------------

    def get(self, key: str) -> WindowFeatures | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        held = int(self._features[slot, 0])
        return WindowFeatures(
            key=key,
            t_last=float(self._t[slot, -1]),
            history_t=self._t[slot, -held:].copy(),
            history=self._v[:, slot, -held:].T.copy(),
            values=self._features[slot].copy(),
        )

    def slots(self, keys: Sequence[str]) -> NDArray[np.int64]:
        """Slot per key, -1 where the store holds no such key."""
        return np.fromiter((self._slots.get(key, -1) for key in keys), dtype=np.int64, count=len(keys))

    def matrix(self, slots: NDArray[np.int64], last: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For held slots: the ``last`` newest timestamps (n, last), events (n, last, columns) and
        features (n, features). Cells older than a key's first event hold -inf / its oldest values."""
        return self._t[slots, -last:], np.moveaxis(self._v[:, slots, -last:], 0, -1), self._features[slots]

    def held_slots(self) -> NDArray[np.int64]:
        """Every slot that holds a key (no Python loop over the keys)."""
        return np.flatnonzero(self._held)

    def all_slots(self) -> tuple[list[str], NDArray[np.int64]]:
        keys = list(self._slots)
        return keys, np.fromiter(self._slots.values(), dtype=np.int64, count=len(keys))

    def nbytes(self) -> int:
        """Bytes of the preallocated arrays: the store's memory does not grow with traffic."""
        return int(self._t.nbytes + self._v.nbytes + self._features.nbytes + self._last_update.nbytes)


def _rate(t: FloatArray, column: FloatArray, mask: NDArray[np.bool_], angular: bool) -> FloatArray:
    rows = np.arange(len(t))
    first = np.argmax(mask, axis=1)  # first True: windows are contiguous and end at the newest cell
    last = t.shape[1] - 1
    span = t[:, last] - t[rows, first]
    delta = column[:, last] - column[rows, first]
    if angular:
        delta = (delta + math.pi) % (2 * math.pi) - math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(span > 0, delta / np.where(span > 0, span, 1.0), 0.0)
    return np.asarray(rate, dtype=np.float64)
