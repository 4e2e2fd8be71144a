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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from strata.apps.autonomy.conditioning import COND_DIM, HORIZON, WAYPOINT_DT_S, WAYPOINT_TIMES, to_world
from strata.apps.autonomy.model import TrajectoryModel
from strata.models.paths import resolve_model_path

FloatArray = NDArray[np.float64]

SAFE_CLEARANCE_M = 2.0  # two cars side by side, centre to centre, with a margin
RISK_SCALE_M = 6.0
BRAKE_MPS2 = 6.0
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

    def as_json(self, alternatives: int) -> dict[str, object]:
        order = [int(i) for i in np.argsort(self.cost) if i != self.chosen][:alternatives]
        return {
            "vehicle_id": self.vehicle_id,
            "collision_free": self.collision_free,
            "plan": self._candidate(self.chosen),
            "alternatives": [self._candidate(i) for i in order],
            "waypoint_dt_s": WAYPOINT_DT_S,
        }

    def _candidate(self, index: int) -> dict[str, object]:
        return {
            "index": index,
            "kind": "brake" if index == len(self.cost) - 1 else "sampled",
            "cost": round(float(self.cost[index]), 4),
            "clearance_m": round(float(min(self.clearance_m[index], 1e6)), 3),
            "progress_m": round(float(self.progress_m[index]), 3),
            "comfort": round(float(self.comfort[index]), 4),
            "waypoints": np.round(self.paths_world[index], 3),
            "waypoints_local": np.round(self.paths_local[index], 3),
        }


def braking_path(speed: float) -> FloatArray:
    stop_s = speed / BRAKE_MPS2
    t = np.minimum(WAYPOINT_TIMES, stop_s)
    path = np.zeros((HORIZON, 2))
    path[:, 0] = speed * t - 0.5 * BRAKE_MPS2 * t**2
    return path


def clearance(paths: FloatArray, neighbours: FloatArray, obstacles: FloatArray) -> FloatArray:
    """Smallest distance over the horizon from each path (k, HORIZON, 2) to anything, (k,).

    Static obstacles are measured to every straight segment of the path, from the vehicle's current
    position on, so a fast path cannot jump over one between waypoints. Vehicles are measured at
    the same waypoint time, where they are predicted to be."""
    nearest = np.full(len(paths), np.inf)
    if len(neighbours):
        gap = np.linalg.norm(paths[:, None] - neighbours[None], axis=-1)  # (k, m, HORIZON)
        nearest = np.minimum(nearest, gap.min(axis=(1, 2)))
    if len(obstacles):
        with_origin = np.concatenate([np.zeros((len(paths), 1, 2)), paths], axis=1)
        a, b = with_origin[:, :-1, None, :], with_origin[:, 1:, None, :]  # (k, HORIZON, 1, 2)
        centre = obstacles[None, None, :, :2]
        segment = b - a
        length2 = np.maximum((segment**2).sum(-1), 1e-12)
        along = np.clip(((centre - a) * segment).sum(-1) / length2, 0.0, 1.0)
        closest = a + along[..., None] * segment
        gap = np.linalg.norm(closest - centre, axis=-1) - obstacles[:, 2]
        nearest = np.minimum(nearest, gap.min(axis=(1, 2)))
    return nearest


def score(paths: FloatArray, speed: float, neighbours: FloatArray, obstacles: FloatArray) -> dict[str, FloatArray]:
    gap = clearance(paths, neighbours, obstacles)
    with_origin = np.concatenate([np.zeros((len(paths), 1, 2)), paths], axis=1)
    velocity = np.diff(with_origin, axis=1) / WAYPOINT_DT_S
    velocity = np.concatenate([np.tile([[[speed, 0.0]]], (len(paths), 1, 1)), velocity], axis=1)
    accel = np.diff(velocity, axis=1) / WAYPOINT_DT_S
    jerk = np.diff(accel, axis=1) / WAYPOINT_DT_S
    comfort = (accel**2).sum(-1).mean(1) + 0.05 * (jerk**2).sum(-1).mean(1)
    progress = paths[:, -1, 0]
    risk = np.exp(-np.square(np.maximum(gap, 0.0) / RISK_SCALE_M))
    cost = WEIGHTS["risk"] * risk + WEIGHTS["comfort"] * comfort / 10.0 - WEIGHTS["progress"] * progress
    return {"clearance": gap, "comfort": comfort, "progress": progress, "cost": cost}


class TrajectoryPlanner:
    """The served model: ``predict_batch(list[PlanItem]) -> list[Plan]``."""

    def __init__(self, path: str = "builtin:autonomy-diffusion", k: int = 8, torch_threads: int = 1, seed: int = 0):
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)  # one core per replica: the batcher, not torch, parallelises
        self.model = TrajectoryModel.load(Path(resolve_model_path(path)))
        self.k = k
        self.generator = torch.Generator().manual_seed(seed)

    def predict_batch(self, items: list[PlanItem]) -> list[Plan]:
        cond = np.stack([item.cond for item in items])
        speed = np.array([item.speed for item in items])
        sampled = self.model.paths(cond, speed, self.k, generator=self.generator)
        return [self._choose(item, sampled[i]) for i, item in enumerate(items)]

    def _choose(self, item: PlanItem, sampled: FloatArray) -> Plan:
        paths = np.concatenate([sampled, braking_path(item.speed)[None]], axis=0)
        scores = score(paths, item.speed, item.neighbours, item.obstacles)
        safe = scores["clearance"] >= SAFE_CLEARANCE_M
        cost = scores["cost"]
        # Hard constraint first: a colliding path is chosen only when every candidate collides,
        # and then the one that keeps the most room.
        chosen = int(np.argmin(np.where(safe, cost, np.inf))) if safe.any() else int(np.argmax(scores["clearance"]))
        return Plan(
            vehicle_id=item.vehicle_id,
            chosen=chosen,
            collision_free=bool(safe[chosen]),
            paths_local=paths,
            paths_world=to_world(paths[None], item.pose[None])[0],
            clearance_m=scores["clearance"],
            cost=cost,
            progress_m=scores["progress"],
            comfort=scores["comfort"],
        )

    def warmup(self) -> None:
        item = PlanItem("warmup", np.zeros(COND_DIM), np.zeros(3), 10.0,
                        np.zeros((0, HORIZON, 2)), np.zeros((0, 3)))  # fmt: skip
        self.predict_batch([item])
