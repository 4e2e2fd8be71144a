"""The planner in constructed scenes: it never chooses a path through a static obstacle."""

from __future__ import annotations

import numpy as np
import pytest

from strata.apps.autonomy.conditioning import HORIZON, WAYPOINT_TIMES, context, telemetry_windows
from strata.apps.autonomy.planner import SAFE_CLEARANCE_M, PlanGroup, PlanItem, TrajectoryPlanner, braking_path
from strata.apps.autonomy.scene import SceneSettings, build_items
from strata.data.features import FeatureStore

SPEED = 15.0


@pytest.fixture(scope="module")
def planner() -> TrajectoryPlanner:
    return TrajectoryPlanner(k=8, seed=0)


def straight_driver_cond() -> np.ndarray:
    """A vehicle that drove east at SPEED for 6 s in the middle lane, ending at the origin."""
    store = FeatureStore(telemetry_windows(4), clock=lambda: 0.0)
    t = np.arange(-6.0, 0.001, 0.1)
    values = np.column_stack([SPEED * t, np.zeros_like(t), np.full_like(t, SPEED), np.zeros_like(t),
                              np.zeros_like(t), np.ones_like(t)])  # fmt: skip
    store.ingest(["ego"] * len(t), t + 100.0, values)
    return context(store, store.slots(["ego"])).cond[0]


def dense_gap(path: np.ndarray, obstacles: np.ndarray) -> float:
    """Independent check: 200 points on every segment from the start, nearest obstacle surface."""
    points = np.concatenate([np.zeros((1, 2)), path])
    fractions = np.linspace(0.0, 1.0, 200)[:, None, None]
    dense = (points[:-1][None] + fractions * (points[1:] - points[:-1])[None]).reshape(-1, 2)
    return float((np.linalg.norm(dense[:, None] - obstacles[None, :, :2], axis=-1) - obstacles[:, 2]).min())


def item(obstacles: np.ndarray) -> PlanItem:
    return PlanItem("ego", straight_driver_cond(), np.zeros(3), SPEED, np.zeros((0, HORIZON, 2)), obstacles)


def test_an_obstacle_ahead_in_the_lane_is_never_driven_through(planner: TrajectoryPlanner) -> None:
    obstacles = np.array([[30.0, 0.0, 1.5]])
    plan = planner.plan([item(obstacles)])[0]
    chosen = plan.paths_local[plan.chosen]
    assert plan.collision_free
    assert dense_gap(chosen, obstacles) >= SAFE_CLEARANCE_M - 1e-6
    # The model's own samples drive on at speed: the obstacle really was in the way of some.
    assert min(dense_gap(path, obstacles) for path in plan.paths_local[:-1]) < SAFE_CLEARANCE_M


def test_random_scenes_never_yield_a_colliding_plan_when_a_safe_one_exists(planner: TrajectoryPlanner) -> None:
    rng = np.random.default_rng(11)
    stop_only = braking_path(SPEED)
    reported_unsafe = 0
    for _ in range(60):
        count = int(rng.integers(1, 6))
        obstacles = np.column_stack([rng.uniform(0, 60, count), rng.uniform(-8, 8, count), rng.uniform(0.3, 3, count)])
        plan = planner.plan([item(obstacles)])[0]
        chosen = plan.paths_local[plan.chosen]
        if plan.collision_free:
            assert dense_gap(chosen, obstacles) >= SAFE_CLEARANCE_M - 1e-6
        else:
            reported_unsafe += 1
            # Only when no candidate is safe, braking included; then the roomiest is chosen.
            assert dense_gap(stop_only, obstacles) < SAFE_CLEARANCE_M
            assert all(dense_gap(p, obstacles) < SAFE_CLEARANCE_M + 1e-6 for p in plan.paths_local)
    assert reported_unsafe < 60


def test_a_batch_plans_each_vehicle_in_its_own_scene(planner: TrajectoryPlanner) -> None:
    blocked, free = item(np.array([[30.0, 0.0, 1.5]])), item(np.zeros((0, 3)))
    first, second = planner.predict_batch([PlanGroup([blocked, free]), PlanGroup([blocked])])
    plans = [*first, *second]
    assert len(first) == 2
    assert len(second) == 1
    assert [p.collision_free for p in plans] == [True, True, True]
    assert plans[1].progress_m[plans[1].chosen] > 30.0  # nothing in the way: it drives on
    assert len(plans[0].as_json(3)["alternatives"]) == 3  # type: ignore[arg-type]


def test_a_stopped_vehicle_ahead_is_kept_clear_of_at_every_waypoint(planner: TrajectoryPlanner) -> None:
    stopped = np.tile([[[25.0, 0.0]]], (1, HORIZON, 1))  # predicted to stay put, 25 m ahead in the lane
    ego = PlanItem("ego", straight_driver_cond(), np.zeros(3), SPEED, stopped, np.zeros((0, 3)))
    plan = planner.plan([ego])[0]
    assert plan.collision_free
    gaps = np.linalg.norm(plan.paths_local[plan.chosen] - stopped[0], axis=-1)
    assert gaps.min() >= SAFE_CLEARANCE_M


def test_scene_predicts_neighbours_in_the_planning_vehicle_frame() -> None:
    store = FeatureStore(telemetry_windows(8), clock=lambda: 0.0)
    # a heads north at 10 m/s from the origin; b is 10 m ahead of it, same heading, 5 m/s; c is far away.
    rows = np.array([[0, 0, 10, np.pi / 2, 0, 1], [0, 10, 5, np.pi / 2, 0, 1], [500, 500, 5, 0, 0, 1]], dtype=float)
    store.ingest(["a", "b", "c"], np.array([100.0, 100.0, 100.0]), rows)
    items, missing = build_items(store, ["a", "ghost"], [np.zeros((0, 3)), np.zeros((0, 3))], SceneSettings())
    assert missing == [1]
    [a] = items
    assert a.neighbours.shape == (1, HORIZON, 2)  # b only: c is out of range, a is not its own neighbour
    np.testing.assert_allclose(a.neighbours[0, :, 0], 10.0 + 5.0 * WAYPOINT_TIMES, atol=1e-9)
    np.testing.assert_allclose(a.neighbours[0, :, 1], 0.0, atol=1e-9)
