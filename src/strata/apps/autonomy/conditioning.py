"""What the model is conditioned on, built the same way in training and in serving.

Both read a vehicle's window from a ``FeatureStore`` with ``TELEMETRY_WINDOWS``, so there is one
definition of the features and no training/serving skew. Paths live in the vehicle's local frame
at its newest telemetry event: x forward, y left, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from strata.apps.autonomy.simulator import COLUMNS, LANES
from strata.data.features import FeatureStore, RateSpec, WindowSpec

FloatArray = NDArray[np.float64]

HORIZON = 12  # waypoints
WAYPOINT_DT_S = 0.25  # 3 s at 4 Hz
HISTORY_POINTS = 10  # the newest telemetry positions the model sees (1 s at 10 Hz)
COND_DIM = 2 * HISTORY_POINTS + 7 + LANES
WAYPOINT_TIMES = WAYPOINT_DT_S * np.arange(1, HORIZON + 1)

X, Y, SPEED, HEADING, ACCEL, LANE = range(len(COLUMNS))


def telemetry_windows(max_vehicles: int = 4096, idle_ttl_s: float = 30.0) -> WindowSpec:
    return WindowSpec(
        columns=COLUMNS,
        history=64,  # 6.4 s at 10 Hz: the 5 s windows fit
        windows_s=(1.0, 5.0),
        mean_columns=("speed", "accel"),
        rates=(RateSpec("heading", 1.0, angular=True),),
        allowed_lateness_s=1.0,
        idle_ttl_s=idle_ttl_s,
        max_keys=max_vehicles,
    )


@dataclass(frozen=True)
class Context:
    """Per vehicle: model conditioning and its pose, as of the newest event."""

    cond: FloatArray  # (n, COND_DIM)
    pose: FloatArray  # (n, 3) x, y, heading in the world frame
    speed: FloatArray  # (n,)
    t_last: FloatArray  # (n,)


def to_local(points: FloatArray, pose: FloatArray) -> FloatArray:
    """World points (n, m, 2) into each vehicle's frame given poses (n, 3)."""
    cos, sin = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    dx, dy = points[..., 0] - pose[:, None, 0], points[..., 1] - pose[:, None, 1]
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], axis=-1)


def to_world(points: FloatArray, pose: FloatArray) -> FloatArray:
    cos, sin = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([pose[:, None, 0] + cos * x - sin * y, pose[:, None, 1] + sin * x + cos * y], axis=-1)


def context(store: FeatureStore, slots: NDArray[np.int64]) -> Context:
    """Conditioning for held slots, vectorised over vehicles (a few array reads per batch)."""
    t, events, features = store.matrix(slots, HISTORY_POINTS)
    newest = events[:, -1]
    pose = newest[:, [X, Y, HEADING]]
    # A vehicle with fewer events than HISTORY_POINTS repeats its oldest one (it was standing there).
    held = np.isfinite(t)
    oldest = np.argmax(held, axis=1)
    fill = events[np.arange(len(slots)), oldest][:, None, :2]
    xy = np.where(held[:, :, None], events[:, :, :2], fill)
    local = to_local(xy, pose) / 10.0
    names = store.spec.feature_names
    means = [features[:, names.index(n)] for n in ("mean_speed_1s", "mean_speed_5s", "mean_accel_1s", "mean_accel_5s")]
    lane = np.clip(np.round(newest[:, LANE]), 0, LANES - 1).astype(np.int64)
    cond = np.column_stack(
        [
            local.reshape(len(slots), -1),
            newest[:, SPEED] / 10.0,
            newest[:, ACCEL] / 3.0,
            means[0] / 10.0,
            means[1] / 10.0,
            means[2] / 3.0,
            means[3] / 3.0,
            features[:, names.index("rate_heading_1s")],
            np.eye(LANES)[lane],
        ]
    )
    return Context(cond=cond, pose=pose, speed=newest[:, SPEED].copy(), t_last=t[:, -1].copy())


def constant_velocity(speed: FloatArray) -> FloatArray:
    """The baseline (and the model's reference path): straight ahead at the current speed, (n, HORIZON, 2)."""
    path = np.zeros((len(speed), HORIZON, 2))
    path[:, :, 0] = speed[:, None] * WAYPOINT_TIMES[None, :]
    return path
