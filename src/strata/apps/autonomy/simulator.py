"""A synthetic fleet: kinematic vehicles on multi-lane roads that change lanes, turn and brake.

Each vehicle drives in its own road frame (a direction and an origin; lane ``k`` is the line
``k * LANE_WIDTH_M`` to the left of the origin). A lane keeper steers toward the target lane's
centre, a speed controller tracks a target speed with limited, smoothed acceleration, and a
random manoeuvre process starts lane changes, 90-degree turns (radius ``TURN_RADIUS_M``, after
which the vehicle is in the new road's outer lane) and stops. Everything is vectorised over the
fleet; the telemetry carries GPS-like position noise, the truth does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

LANES = 3
LANE_WIDTH_M = 3.5
TURN_RADIUS_M = 20.0
SIM_DT_S = 0.05
TELEMETRY_EVERY = 2  # steps: 10 Hz telemetry
POSITION_NOISE_M = 0.05
COLUMNS = ("x", "y", "speed", "heading", "accel", "lane")

CRUISE, LANE_CHANGE, TURN, BRAKE = 0, 1, 2, 3
# Rates (per second) at which a cruising vehicle starts each manoeuvre.
LANE_CHANGE_RATE, TURN_RATE, BRAKE_RATE, RETARGET_RATE = 0.10, 0.05, 0.03, 0.05


@dataclass(frozen=True)
class Telemetry:
    """One telemetry tick of the fleet: row ``i`` is vehicle ``ids[i]``."""

    ids: list[str]
    t: FloatArray  # (n,)
    values: FloatArray  # (n, len(COLUMNS))
    truth_xy: FloatArray  # (n, 2) noise-free positions


def wrap(angle: FloatArray) -> FloatArray:
    return np.asarray((angle + math.pi) % (2 * math.pi) - math.pi, dtype=np.float64)


class FleetSimulator:
    def __init__(self, vehicles: int, *, seed: int = 0, area_m: float | None = None, t0: float = 0.0) -> None:
        self.rng = np.random.default_rng(seed)
        n = vehicles
        self.n = n
        self.ids = [f"veh-{seed}-{i}" for i in range(n)]
        self.t = t0
        self.steps = 0
        area = area_m if area_m is not None else 60.0 * math.sqrt(n) + 200.0
        self.road = np.asarray(self.rng.integers(0, 4, n) * (math.pi / 2), dtype=np.float64)  # road direction
        self.lane_target: FloatArray = self.rng.integers(0, LANES, n).astype(np.float64)
        self.xy: FloatArray = self.rng.uniform(-area / 2, area / 2, (n, 2))
        self.origin = self.xy - (self.lane_target * LANE_WIDTH_M)[:, None] * _left(self.road)
        self.heading = self.road.copy()
        self.v_target = self.rng.uniform(8.0, 20.0, n)
        self.speed = self.v_target * self.rng.uniform(0.7, 1.0, n)
        self.accel = np.zeros(n)
        self.mode = np.zeros(n, dtype=np.int64)
        self.turn_dir = np.zeros(n)
        self.timer = self.rng.uniform(0.0, 3.0, n)  # seconds until the next manoeuvre may start

    def lateral(self) -> FloatArray:
        d = np.stack([np.cos(self.road), np.sin(self.road)], axis=1)
        rel = self.xy - self.origin
        return np.asarray(d[:, 0] * rel[:, 1] - d[:, 1] * rel[:, 0], dtype=np.float64)

    def lane(self) -> FloatArray:
        return np.clip(np.round(self.lateral() / LANE_WIDTH_M), 0, LANES - 1)

    def step(self) -> None:
        """Advance the fleet by ``SIM_DT_S``: 1 pick manoeuvres, 2 steer, 3 control speed, 4 move."""
        dt = SIM_DT_S
        self.timer -= dt
        self._start_manoeuvres(dt)
        yaw_rate = self._steer()
        self._control_speed(dt)
        self.heading = wrap(self.heading + yaw_rate * dt)
        self.xy = self.xy + (self.speed * dt)[:, None] * np.stack([np.cos(self.heading), np.sin(self.heading)], axis=1)
        self._finish_turns()
        self.t += dt
        self.steps += 1

    def _start_manoeuvres(self, dt: float) -> None:
        free = (self.mode == CRUISE) & (self.timer <= 0)
        draw = self.rng.random(self.n)
        lane_change = free & (draw < LANE_CHANGE_RATE * dt)
        turn = free & ~lane_change & (draw < (LANE_CHANGE_RATE + TURN_RATE) * dt)
        brake = free & ~lane_change & ~turn & (draw < (LANE_CHANGE_RATE + TURN_RATE + BRAKE_RATE) * dt)
        step = np.where(self.rng.random(self.n) < 0.5, -1.0, 1.0)
        target = self.lane_target + step
        target = np.where((target < 0) | (target >= LANES), self.lane_target - step, target)
        self.lane_target = np.where(lane_change, target, self.lane_target)
        self.mode = np.where(lane_change, LANE_CHANGE, self.mode)
        self.mode = np.where(turn, TURN, self.mode)
        self.turn_dir = np.where(turn, step, self.turn_dir)
        self.mode = np.where(brake, BRAKE, self.mode)
        self.timer = np.where(brake, self.rng.uniform(1.0, 3.0, self.n), self.timer)  # standstill time
        retarget = free & (self.rng.random(self.n) < RETARGET_RATE * dt)
        self.v_target = np.where(retarget, self.rng.uniform(8.0, 20.0, self.n), self.v_target)
        done = (self.mode == LANE_CHANGE) & (np.abs(self.lateral() - self.lane_target * LANE_WIDTH_M) < 0.15)
        self.mode = np.where(done, CRUISE, self.mode)
        self.timer = np.where(done, 2.0, self.timer)

    def _steer(self) -> FloatArray:
        error = self.lateral() - self.lane_target * LANE_WIDTH_M
        desired = self.road + np.clip(-0.12 * error, -0.2, 0.2)
        keep = np.clip(1.5 * wrap(desired - self.heading), -0.4, 0.4)
        turning = self.turn_dir * np.maximum(self.speed, 0.5) / TURN_RADIUS_M
        return np.asarray(np.where(self.mode == TURN, turning, keep), dtype=np.float64)

    def _control_speed(self, dt: float) -> None:
        target = np.where(self.mode == TURN, np.minimum(self.v_target, 7.0), self.v_target)
        braking = self.mode == BRAKE
        target = np.where(braking, 0.0, target)
        desired = np.clip(0.6 * (target - self.speed), np.where(braking, -4.5, -2.5), 1.5)
        self.accel = self.accel + (desired - self.accel) * min(1.0, dt / 0.3)
        self.speed = np.maximum(0.0, self.speed + self.accel * dt)
        stopped = braking & (self.speed < 0.05)
        self.speed = np.where(stopped, 0.0, self.speed)
        self.accel = np.where(stopped, 0.0, self.accel)
        resume = stopped & (self.timer <= 0)
        self.mode = np.where(resume, CRUISE, self.mode)
        self.timer = np.where(resume, 2.0, self.timer)

    def _finish_turns(self) -> None:
        new_road = self.road + self.turn_dir * (math.pi / 2)
        done = (self.mode == TURN) & (self.turn_dir * wrap(self.heading - new_road) >= 0)
        if not done.any():
            return
        self.road = np.asarray(np.where(done, wrap(new_road), self.road), dtype=np.float64)
        self.heading = np.where(done, self.road, self.heading)
        outer: FloatArray = np.where(self.turn_dir > 0, LANES - 1, 0).astype(np.float64)
        self.lane_target = np.where(done, outer, self.lane_target)
        origin = self.xy - (outer * LANE_WIDTH_M)[:, None] * _left(self.road)
        self.origin = np.where(done[:, None], origin, self.origin)
        self.mode = np.where(done, CRUISE, self.mode)
        self.timer = np.where(done, 2.0, self.timer)

    def telemetry(self) -> Telemetry:
        noisy = self.xy + self.rng.normal(0.0, POSITION_NOISE_M, self.xy.shape)
        values = np.column_stack([noisy, self.speed, self.heading, self.accel, self.lane()])
        return Telemetry(self.ids, np.full(self.n, self.t), values, self.xy.copy())

    def advance(self, seconds: float) -> None:
        for _ in range(round(seconds / SIM_DT_S)):
            self.step()


def _left(direction: FloatArray) -> FloatArray:
    return np.stack([-np.sin(direction), np.cos(direction)], axis=1)
