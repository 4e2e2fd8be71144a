"""Arrival-rate traces for the autoscaling simulation, and seeded Poisson arrivals drawn from them.

A trace is a rate per short bin (requests per second), so any shape is one array. The three
shapes are the loads an autoscaler meets: ``steady`` (it must settle and stay put), ``diurnal``
(a compressed day, a smooth ramp the forecast should run ahead of) and ``bursty`` (a quiet
baseline with sudden bursts several times as high, which no trend predicts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BIN_S = 0.1

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    rates: FloatArray  # requests per second in each bin of BIN_S seconds

    @property
    def duration_s(self) -> float:
        return len(self.rates) * BIN_S


def _bin_starts(duration_s: float) -> FloatArray:
    return np.arange(round(duration_s / BIN_S), dtype=np.float64) * BIN_S


def steady(duration_s: float = 600.0, rate: float = 150.0) -> Trace:
    return Trace("steady", np.full(len(_bin_starts(duration_s)), rate))


def diurnal(duration_s: float = 600.0, low: float = 20.0, high: float = 360.0) -> Trace:
    """One day in ``duration_s``: night at ``low``, a smooth (cosine) climb to ``high`` at noon, and back."""
    phase = 2.0 * np.pi * _bin_starts(duration_s) / duration_s
    return Trace("diurnal", low + (high - low) * (1.0 - np.cos(phase)) / 2.0)


def bursty(
    duration_s: float = 600.0,
    base: float = 40.0,
    every_s: float = 60.0,
    seed: int = 0,
) -> Trace:
    """``base`` with bursts of 5-10x that last 5-15 s, starting on average every ``every_s`` seconds."""
    rng = np.random.default_rng(seed)
    rates = np.full(len(_bin_starts(duration_s)), base)
    start = float(rng.exponential(every_s / 2.0))
    while start < duration_s:
        length, factor = rng.uniform(5.0, 15.0), rng.uniform(5.0, 10.0)
        first, last = round(start / BIN_S), round((start + length) / BIN_S)
        rates[first:last] = base * factor
        start += length + float(rng.exponential(every_s))
    return Trace("bursty", rates)


TRACE_NAMES = ("steady", "diurnal", "bursty")


def build_trace(name: str, duration_s: float, seed: int = 0) -> Trace:
    """One of TRACE_NAMES at its default levels; ``seed`` places the bursts of ``bursty``."""
    builders: dict[str, Callable[[], Trace]] = {
        "steady": lambda: steady(duration_s),
        "diurnal": lambda: diurnal(duration_s),
        "bursty": lambda: bursty(duration_s, seed=seed),
    }
    if name not in builders:
        raise ValueError(f"trace: unknown {name!r}; expected one of {', '.join(TRACE_NAMES)}")
    return builders[name]()


def poisson_arrivals(trace: Trace, rng: np.random.Generator) -> FloatArray:
    """Sorted arrival times: a Poisson count per bin at its rate, spread uniformly within the bin."""
    counts = rng.poisson(trace.rates * BIN_S)
    starts = np.repeat(_bin_starts(trace.duration_s), counts)
    return np.sort(starts + rng.uniform(0.0, BIN_S, size=len(starts)))
