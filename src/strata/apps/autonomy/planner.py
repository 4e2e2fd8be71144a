"""The planner: sample K candidate paths per vehicle, score them, choose one.

Served as a ``kind: python`` model: ``predict_batch`` takes ``PlanItem``s from many vehicles and
samples every candidate of the batch in one model call. Scoring, per candidate:

* collision: the smallest clearance over the horizon to a static obstacle (its radius
  subtracted) or to a nearby vehicle's predicted position at the same waypoint time. A candidate
  closer than ``SAFE_CLEARANCE_M`` collides and is never chosen while any candidate does not.
* risk: a soft penalty that grows as the clearance shrinks below ``RISK_SCALE_M``.
* comfort: mean squared acceleration plus a small share of the mean squared jerk.
* progress: the distance travelled forward by the last waypoint.

Besides the sampled paths, a braking path (straight ahead, decelerating at ``BRAKE_MPS2``) is
always a candidate, so a vehicle facing an obstacle in every sampled path can still stop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from strata.apps.autonomy.conditioning import COND_DIM, HORIZON, WAYPOINT_DT_S, WAYPOINT_TIMES, to_world
from strata.apps.autonomy.model import TrajectoryModel
from strata.apps.autonomy.onnx import OnnxSampler
from strata.models.onnx_runtime import OnnxModel
from strata.models.paths import resolve_model_path

FloatArray = NDArray[np.float64]

SAFE_CLEARANCE_M = 2.0  # two cars side by side, centre to centre, with a margin
RISK_SCALE_M = 6.0
BRAKE_MPS2 = 6.0
FAR_M = 1e9  # where padding puts absent neighbours and obstacles
WEIGHTS = {"risk": 10.0, "comfort": 1.0, "progress": 0.3}


@dataclass(frozen=True)
class PlanItem:
    """Everything one vehicle's plan needs; built by the API from the feature store."""

    vehicle_id: str
    cond: FloatArray  # (COND_DIM,)
    pose: FloatArray  # (3,) world x, y, heading
    speed: float
    neighbours: FloatArray  # (m, HORIZON, 2) other vehicles' predicted positions, local frame
    obstacles: FloatArray  # (o, 3) static obstacles: x, y, radius, local frame
    window_end: float = 0.0  # timestamp of the newest event in the features: which telemetry the plan used


@dataclass(frozen=True)
class PlanGroup:
    """The vehicles of one request: one batch item, however many vehicles it holds. Per-item work in
    the serving layer (routing, futures, metrics) is then paid per request, not per vehicle."""

    items: list[PlanItem]


@dataclass(frozen=True)
class Plan:
    vehicle_id: str
    chosen: int
    collision_free: bool
    paths_local: FloatArray  # (k + 1, HORIZON, 2), the braking path last
    paths_world: FloatArray
    clearance_m: FloatArray  # (k + 1,)
    cost: FloatArray  # (k + 1,)
    progress_m: FloatArray
    comfort: FloatArray
    window_end: float = 0.0

    def as_json(self, alternatives: int) -> dict[str, object]:
        order = [int(i) for i in np.argsort(self.cost) if i != self.chosen][:alternatives]
        world, local = np.round(self.paths_world, 3), np.round(self.paths_local, 3)  # once, not per candidate
        numbers = np.round(np.stack([self.cost, np.minimum(self.clearance_m, 1e6), self.progress_m, self.comfort]), 4)
        return {
            "vehicle_id": self.vehicle_id,
            "collision_free": self.collision_free,
            "plan": self._candidate(self.chosen, world, local, numbers),
            "alternatives": [self._candidate(i, world, local, numbers) for i in order],
            "waypoint_dt_s": WAYPOINT_DT_S,
            "window_end": self.window_end,
        }

    def _candidate(self, index: int, world: FloatArray, local: FloatArray, numbers: FloatArray) -> dict[str, object]:
        cost, clearance_m, progress_m, comfort = numbers[:, index].tolist()
        return {
            "index": index,
            "kind": "brake" if index == len(self.cost) - 1 else "sampled",
            "cost": cost,
            "clearance_m": clearance_m,
            "progress_m": progress_m,
            "comfort": comfort,
            "waypoints": world[index],
            "waypoints_local": local[index],
        }


def braking_paths(speed: FloatArray) -> FloatArray:
    """Straight ahead, braking at ``BRAKE_MPS2`` until stopped: (n, HORIZON, 2)."""
    t = np.minimum(WAYPOINT_TIMES[None, :], (speed / BRAKE_MPS2)[:, None])
    path = np.zeros((len(speed), HORIZON, 2))
    path[:, :, 0] = speed[:, None] * t - 0.5 * BRAKE_MPS2 * t**2
    return path


def braking_path(speed: float) -> FloatArray:
    path: FloatArray = braking_paths(np.array([speed]))[0]
    return path


def _padded(arrays: list[FloatArray], shape: tuple[int, ...], fill: float) -> FloatArray:
    """Stack ragged (m_i, *shape) arrays as (n, max m, *shape); padding is ``fill`` (far away)."""
    width = max(1, max(len(a) for a in arrays))
    out = np.full((len(arrays), width, *shape), fill)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return out


def clearance(paths: FloatArray, neighbours: FloatArray, obstacles: FloatArray) -> FloatArray:
    """Smallest distance over the horizon from each path to anything: paths (n, k, HORIZON, 2),
    neighbours (n, m, HORIZON, 2), obstacles (n, o, 3) -> (n, k).

    Static obstacles are measured to every straight segment of the path, from the vehicle's current
    position on, so a fast path cannot jump over one between waypoints. Vehicles are measured at
    the same waypoint time, where they are predicted to be."""
    n, k = paths.shape[:2]
    gap = np.linalg.norm(paths[:, :, None] - neighbours[:, None], axis=-1)  # (n, k, m, HORIZON)
    nearest = gap.min(axis=(2, 3))
    with_origin = np.concatenate([np.zeros((n, k, 1, 2)), paths], axis=2)
    a, b = with_origin[:, :, :-1, None, :], with_origin[:, :, 1:, None, :]  # (n, k, HORIZON, 1, 2)
    centre = obstacles[:, None, None, :, :2]  # (n, 1, 1, o, 2)
    segment = b - a
    length2 = np.maximum((segment**2).sum(-1), 1e-12)
    along = np.clip(((centre - a) * segment).sum(-1) / length2, 0.0, 1.0)
    closest = a + along[..., None] * segment
    surface = np.linalg.norm(closest - centre, axis=-1) - obstacles[:, None, None, :, 2]
    return np.asarray(np.minimum(nearest, surface.min(axis=(2, 3))), dtype=np.float64)


def score(paths: FloatArray, speed: FloatArray, neighbours: FloatArray, obstacles: FloatArray) -> dict[str, FloatArray]:
    """Per candidate (n, k): clearance, comfort, progress and the cost the planner minimises."""
    n, k = paths.shape[:2]
    gap = clearance(paths, neighbours, obstacles)
    with_origin = np.concatenate([np.zeros((n, k, 1, 2)), paths], axis=2)
    velocity = np.diff(with_origin, axis=2) / WAYPOINT_DT_S
    now = np.zeros((n, k, 1, 2))
    now[..., 0] = speed[:, None, None]
    accel = np.diff(np.concatenate([now, velocity], axis=2), axis=2) / WAYPOINT_DT_S
    jerk = np.diff(accel, axis=2) / WAYPOINT_DT_S
    comfort = (accel**2).sum(-1).mean(-1) + 0.05 * (jerk**2).sum(-1).mean(-1)
    progress = paths[:, :, -1, 0]
    risk = np.exp(-np.square(np.maximum(gap, 0.0) / RISK_SCALE_M))
    cost = WEIGHTS["risk"] * risk + WEIGHTS["comfort"] * comfort / 10.0 - WEIGHTS["progress"] * progress
    return {"clearance": gap, "comfort": comfort, "progress": progress, "cost": cost}


class TrajectoryPlanner:
    """The served model: ``predict_batch(list[PlanItem]) -> list[Plan]``.

    With ``onnx`` (``kind: onnx`` passes its session), the denoiser runs on ONNX Runtime from that
    export folder and ``path`` is not read; otherwise on torch, traced into one graph."""

    def __init__(
        self,
        path: str = "builtin:autonomy-diffusion",
        k: int = 8,
        torch_threads: int = 1,
        seed: int = 0,
        gil_switch_interval_ms: float | None = None,
        onnx: OnnxModel | None = None,
    ) -> None:
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)  # one core per replica: the batcher, not torch, parallelises
        if gil_switch_interval_ms is not None:
            # Process-wide. The model runs in the replica's thread as many small torch/numpy calls, each
            # giving up the GIL and taking it back; while the event loop parses telemetry, every take-back
            # can wait a whole switch interval (5 ms by default), which adds tens of ms to a plan.
            sys.setswitchinterval(gil_switch_interval_ms / 1000.0)
        if onnx is None:
            self.model = TrajectoryModel.load(Path(resolve_model_path(path)))
            self.model.trace()
        else:
            self.model = TrajectoryModel.load(onnx.folder)
            self.model.sampler = OnnxSampler(onnx)
        self.k = k
        self.generator = torch.Generator().manual_seed(seed)

    def predict_batch(self, inputs: list[PlanGroup]) -> list[list[Plan]]:
        """Every vehicle of every group in the batch at once; the plans go back grouped as they came."""
        plans = self.plan([item for group in inputs for item in group.items])
        grouped, start = [], 0
        for group in inputs:
            grouped.append(plans[start : start + len(group.items)])
            start += len(group.items)
        return grouped

    def plan(self, items: list[PlanItem]) -> list[Plan]:
        """One model call and one scoring pass over (n, k + 1) paths."""
        n = len(items)
        cond = np.stack([item.cond for item in items])
        speed = np.array([item.speed for item in items])
        pose = np.stack([item.pose for item in items])
        sampled = self.model.paths(cond, speed, self.k, generator=self.generator)
        paths = np.concatenate([sampled, braking_paths(speed)[:, None]], axis=1)  # (n, k + 1, HORIZON, 2)
        neighbours = _padded([item.neighbours for item in items], (HORIZON, 2), FAR_M)
        obstacles = _padded([item.obstacles for item in items], (3,), FAR_M)
        obstacles[:, :, 2] = np.where(obstacles[:, :, 2] == FAR_M, 0.0, obstacles[:, :, 2])
        scores = score(paths, speed, neighbours, obstacles)
        safe = scores["clearance"] >= SAFE_CLEARANCE_M
        # Hard constraint first: a colliding path is chosen only when every candidate collides,
        # and then the one that keeps the most room.
        chosen = np.where(
            safe.any(axis=1),
            np.argmin(np.where(safe, scores["cost"], np.inf), axis=1),
            np.argmax(scores["clearance"], axis=1),
        )
        world = to_world(paths.reshape(n, -1, 2), pose).reshape(paths.shape)
        return [
            Plan(
                vehicle_id=item.vehicle_id,
                chosen=int(chosen[i]),
                collision_free=bool(safe[i, chosen[i]]),
                paths_local=paths[i],
                paths_world=world[i],
                clearance_m=scores["clearance"][i],
                cost=scores["cost"][i],
                progress_m=scores["progress"][i],
                comfort=scores["comfort"][i],
                window_end=item.window_end,
            )
            for i, item in enumerate(items)
        ]

    def warmup(self) -> None:
        item = PlanItem("warmup", np.zeros(COND_DIM), np.zeros(3), 10.0,
                        np.zeros((0, HORIZON, 2)), np.zeros((0, 3)))  # fmt: skip
        self.predict_batch([PlanGroup([item])])
