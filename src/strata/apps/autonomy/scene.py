"""Builds planner inputs from the feature store: ego conditioning, nearby vehicles, obstacles.

Runs on the gateway's event loop, beside ingest, so every plan sees one consistent snapshot of
the store. Vectorised over the vehicles of a request: one distance matrix against the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from strata.apps.autonomy.conditioning import HEADING, SPEED, WAYPOINT_TIMES, X, Y, context, to_local
from strata.apps.autonomy.planner import PlanItem
from strata.data.features import FeatureStore

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SceneSettings:
    neighbour_radius_m: float = 60.0
    max_neighbours: int = 8


def build_items(
    store: FeatureStore, vehicle_ids: list[str], obstacles: list[FloatArray], settings: SceneSettings
) -> tuple[list[PlanItem], list[int]]:
    """Plan items for the vehicles the store holds, and the indexes of those it does not.
    ``obstacles[i]`` are vehicle i's static obstacles in the world frame, (o, 3) x, y, radius."""
    slots = store.slots(vehicle_ids)
    held = np.flatnonzero(slots >= 0)
    missing = [int(i) for i in np.flatnonzero(slots < 0)]
    if len(held) == 0:
        return [], missing
    ctx = context(store, slots[held])
    neighbours = _neighbours(store, slots[held], ctx.pose, ctx.t_last, settings)
    items = []
    for row, index in enumerate(held):
        world = obstacles[index]
        local = to_local(world[None, :, :2], ctx.pose[row : row + 1])[0] if len(world) else np.zeros((0, 2))
        items.append(
            PlanItem(
                vehicle_id=vehicle_ids[index],
                cond=ctx.cond[row],
                pose=ctx.pose[row],
                speed=float(ctx.speed[row]),
                neighbours=neighbours[row],
                obstacles=np.column_stack([local, world[:, 2]]) if len(world) else np.zeros((0, 3)),
                window_end=float(ctx.t_last[row]),
            )
        )
    return items, missing


def _neighbours(
    store: FeatureStore, slots: NDArray[np.int64], pose: FloatArray, t_now: FloatArray, settings: SceneSettings
) -> list[FloatArray]:
    """Per vehicle: the nearest other vehicles' constant-velocity paths, in its frame, at its waypoint times."""
    fleet = store.held_slots()
    t, events, _ = store.matrix(fleet, 1)
    state = events[:, 0]
    dx = state[:, X][None, :] - pose[:, 0, None]
    dy = state[:, Y][None, :] - pose[:, 1, None]
    gap = dx * dx + dy * dy  # squared distances (n, fleet): the order is all that matters here
    gap[slots[:, None] == fleet[None, :]] = np.inf  # not oneself
    gap[gap > settings.neighbour_radius_m**2] = np.inf
    m = min(settings.max_neighbours, len(fleet))
    nearest = np.argpartition(gap, m - 1, axis=1)[:, :m] if m else np.zeros((len(slots), 0), dtype=np.int64)
    valid = np.isfinite(np.take_along_axis(gap, nearest, axis=1))  # (n, m)
    other = state[nearest]  # (n, m, columns)
    # Where each neighbour will be at this vehicle's waypoint times, from its own newest event.
    ahead = (t_now[:, None] - t[nearest, 0])[..., None] + WAYPOINT_TIMES  # (n, m, HORIZON)
    direction = np.stack([np.cos(other[..., HEADING]), np.sin(other[..., HEADING])], axis=-1)  # (n, m, 2)
    world = other[..., [X, Y]][:, :, None, :] + (other[..., SPEED, None] * ahead)[..., None] * direction[:, :, None, :]
    local = to_local(world.reshape(len(slots), -1, 2), pose).reshape(world.shape)
    return [local[row][valid[row]] for row in range(len(slots))]
