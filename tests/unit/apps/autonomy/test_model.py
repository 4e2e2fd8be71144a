"""The shipped trajectory model, the simulator it is trained on, and the training script."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from strata.apps.autonomy.conditioning import COND_DIM, HORIZON, constant_velocity, context, telemetry_windows
from strata.apps.autonomy.model import TrajectoryModel
from strata.apps.autonomy.simulator import LANES, FleetSimulator
from strata.apps.autonomy.train import make_dataset, tiny_settings, train_autonomy_model
from strata.data.features import FeatureStore
from strata.models.paths import resolve_model_path


def _fleet_context(vehicles: int) -> tuple[np.ndarray, np.ndarray]:
    sim = FleetSimulator(vehicles, seed=5)
    store = FeatureStore(telemetry_windows(vehicles), clock=lambda: sim.t)
    for _ in range(30):
        sim.advance(0.1)
        tick = sim.telemetry()
        store.ingest(tick.ids, tick.t, tick.values)
    ctx = context(store, store.slots(sim.ids))
    return ctx.cond, ctx.speed


def test_the_shipped_model_samples_finite_paths_of_the_right_shape() -> None:
    model = TrajectoryModel.load(resolve_model_path("builtin:autonomy-diffusion"))
    assert model.config.layers == 4
    assert model.config.sampling_steps == 2
    cond, speed = _fleet_context(6)
    assert cond.shape == (6, COND_DIM)
    paths = model.paths(cond, speed, 5, generator=torch.Generator().manual_seed(0))
    assert paths.shape == (6, 5, HORIZON, 2)
    assert np.isfinite(paths).all()
    # Samples differ (it is a distribution), and stay near the kinematics (a few metres in 3 s).
    assert np.ptp(paths[:, :, -1], axis=1).max() > 0.01
    reference = constant_velocity(speed)[:, None]
    assert np.abs(paths - reference).max() < 40.0


def test_simulated_vehicles_stay_kinematic() -> None:
    sim = FleetSimulator(64, seed=1)
    previous = sim.xy.copy()
    for _ in range(400):  # 20 s
        sim.step()
        step = np.linalg.norm(sim.xy - previous, axis=1)
        previous = sim.xy.copy()
        assert (sim.speed >= 0).all()
        assert (sim.speed < 25).all()
        assert (step <= sim.speed * 0.05 + 1e-9).all()
    lanes = sim.lane()
    assert lanes.min() >= 0
    assert lanes.max() <= LANES - 1
    assert len(set(np.round(sim.road / (np.pi / 2)).astype(int) % 4)) > 1  # some vehicles turned


def test_training_runs_end_to_end_and_writes_loadable_weights(tmp_path: Path) -> None:
    report = train_autonomy_model(tmp_path / "model", tiny_settings())
    assert report.samples > 0
    assert report.params > 0
    assert np.isfinite([report.teacher.ade_m, report.student.fde_m, report.baseline.ade_m]).all()
    loaded = TrajectoryModel.load(tmp_path / "model")
    cond, speed = _fleet_context(2)
    assert np.isfinite(loaded.paths(cond, speed, 3)).all()


def test_datasets_are_reproducible() -> None:
    settings = replace(tiny_settings(), vehicles=4)
    first = make_dataset(settings.vehicles, settings.seconds, seed=3)
    second = make_dataset(settings.vehicles, settings.seconds, seed=3)
    np.testing.assert_array_equal(first.future, second.future)
    np.testing.assert_array_equal(first.cond, second.cond)
