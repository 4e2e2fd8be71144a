"""A short-horizon forecast of the arrival rate: a least-squares line through recent samples.

Why a straight line: the forecast only has to see a ramp early enough to cover one cold start
(seconds), not to model a day. Over a window of tens of seconds a diurnal curve is close to a
line, and least squares over the whole window averages the Poisson noise of each sample down
(the level's error shrinks with the square root of the sample count), where the last sample
alone or a two-point slope would chase every flicker. A burst (a step) is not a trend; the line
follows it only slowly, which is right: the backlog term answers bursts.
"""

from __future__ import annotations

from collections.abc import Sequence

# Fewer points than this and the slope is mostly noise: the forecast then says nothing.
MIN_POINTS = 5


def projected_rate(points: Sequence[tuple[float, float]], at_s: float, *, min_span_s: float = 0.0) -> float | None:
    """The rate the least-squares line through ``points`` ((time_s, rate) pairs, oldest first) gives at ``at_s``.

    None when there are too few points or they span less than ``min_span_s`` (a line through two
    seconds of samples projected ten seconds ahead is noise times five); never below zero.
    """
    count = len(points)
    if count < MIN_POINTS or points[-1][0] - points[0][0] < min_span_s:
        return None
    mean_t = sum(t for t, _ in points) / count
    mean_r = sum(r for _, r in points) / count
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0.0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / spread
    return max(0.0, mean_r + slope * (at_s - mean_t))
