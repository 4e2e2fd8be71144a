"""Trains the shipped trajectory model on the simulated fleet, then distils its sampler.

1. Simulate a fleet, stream its telemetry through the serving feature store, and pair each
   vehicle's conditioning with the true path of the next 3 s (`make_dataset`).
2. Train the denoiser (v-prediction) and sample it with a ``TEACHER_STEPS``-step DDIM teacher.
3. Progressive distillation (Salimans & Ho, 2022): each round trains a student to match two
   teacher DDIM steps with one, halving the steps until ``STUDENT_STEPS``.
4. Evaluate ADE/FDE on a held-out fleet (another seed) for the constant-velocity baseline, the
   teacher and the student, and time both samplers.
Seeded throughout: the same arguments give the same weights on the same torch build.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from strata.apps.autonomy.conditioning import (
    HORIZON,
    WAYPOINT_DT_S,
    constant_velocity,
    context,
    telemetry_windows,
    to_local,
)
from strata.apps.autonomy.model import PATH_DIM, Denoiser, DiffusionConfig, TrajectoryModel, alpha_sigma, ddim_step
from strata.apps.autonomy.simulator import SIM_DT_S, TELEMETRY_EVERY, FleetSimulator
from strata.data.features import FeatureStore

TEACHER_STEPS = 32
STUDENT_STEPS = 2
SAMPLE_EVERY_S = 0.5
WARMUP_S = 5.0  # the 5 s windows are full before the first sample

Progress = Callable[[str, int, int], None]  # phase, step, total


@dataclass(frozen=True)
class Dataset:
    cond: NDArray[np.float64]  # (n, COND_DIM)
    speed: NDArray[np.float64]  # (n,)
    future: NDArray[np.float64]  # (n, HORIZON, 2) true path in the local frame

    def __len__(self) -> int:
        return len(self.cond)


@dataclass(frozen=True)
class TrainSettings:
    vehicles: int = 400
    seconds: float = 90.0
    base_steps: int = 12000
    distill_steps: int = 2000  # per halving round
    batch: int = 512
    lr: float = 2e-3
    seed: int = 0
    eval_vehicles: int = 150
    eval_seconds: float = 40.0


@dataclass(frozen=True)
class Scores:
    ade_m: float
    fde_m: float
    min_ade_m: float  # best of K samples
    min_fde_m: float


@dataclass(frozen=True)
class TrainReport:
    samples: int
    params: int
    seconds: float
    baseline: Scores
    teacher: Scores
    student: Scores
    teacher_ms: float  # sampling time per vehicle for K paths
    student_ms: float
    k: int

    @property
    def speedup(self) -> float:
        return self.teacher_ms / self.student_ms


def make_dataset(vehicles: int, seconds: float, seed: int) -> Dataset:
    """Conditioning and true future paths for every vehicle every ``SAMPLE_EVERY_S``."""
    sim = FleetSimulator(vehicles, seed=seed)
    store = FeatureStore(telemetry_windows(max_vehicles=vehicles), clock=lambda: sim.t)
    every = round(WAYPOINT_DT_S / SIM_DT_S)
    total_steps = round((seconds + HORIZON * WAYPOINT_DT_S) / SIM_DT_S)
    truth: list[NDArray[np.float64]] = []
    pending: list[tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = []
    slots = None
    for step in range(total_steps):
        sim.step()
        if step % every == every - 1:
            truth.append(sim.xy.copy())
        if step % TELEMETRY_EVERY == TELEMETRY_EVERY - 1:
            tick = sim.telemetry()
            store.ingest(tick.ids, tick.t, tick.values)
            slots = store.slots(tick.ids) if slots is None else slots
            due = sim.t >= WARMUP_S and sim.t <= seconds and _on_grid(sim.t, SAMPLE_EVERY_S)
            if due and step % every == every - 1:
                ctx = context(store, slots)
                pending.append((len(truth) - 1, ctx.cond, ctx.speed, ctx.pose))
    conds, speeds, futures = [], [], []
    for index, cond, speed, pose in pending:
        world = np.stack(truth[index + 1 : index + 1 + HORIZON], axis=1)  # (n, HORIZON, 2)
        conds.append(cond)
        speeds.append(speed)
        futures.append(to_local(world, pose))
    return Dataset(np.concatenate(conds), np.concatenate(speeds), np.concatenate(futures))


def _on_grid(t: float, every_s: float) -> bool:
    return abs(t / every_s - round(t / every_s)) < 1e-6


def _residuals(data: Dataset) -> NDArray[np.float64]:
    return (data.future - constant_velocity(data.speed)).reshape(len(data), PATH_DIM)


def _batches(
    data: Dataset, scale: NDArray[np.float64], batch: int, generator: torch.Generator
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    x = torch.from_numpy((_residuals(data) / scale).astype(np.float32))
    cond = torch.from_numpy(data.cond.astype(np.float32))

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(x), (batch,), generator=generator)
        return x[index], cond[index]

    return draw


def _optimiser(
    model: Denoiser, lr: float, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    return optimiser, schedule


def train_base(
    model: Denoiser, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]], settings: TrainSettings,
    generator: torch.Generator, progress: Progress | None,
) -> None:  # fmt: skip
    optimiser, schedule = _optimiser(model, settings.lr, settings.base_steps)
    for step in range(settings.base_steps):
        x, cond = draw()
        t = torch.rand(len(x), generator=generator) * 0.998 + 0.001
        eps = torch.randn(x.shape, generator=generator)
        alpha, sigma = alpha_sigma(t)
        z = alpha[:, None] * x + sigma[:, None] * eps
        v_target = alpha[:, None] * eps - sigma[:, None] * x
        loss = torch.nn.functional.mse_loss(model(z, t, cond), v_target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        schedule.step()
        if progress is not None and step % 100 == 0:
            progress("train", step, settings.base_steps)


def distil_round(
    teacher: Denoiser, student_steps: int, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    settings: TrainSettings, generator: torch.Generator, progress: Progress | None,
) -> Denoiser:  # fmt: skip
    """One halving: the student's step t -> t - 1/N matches the teacher's two half steps."""
    student = copy.deepcopy(teacher).train()
    teacher.eval()
    optimiser, schedule = _optimiser(student, settings.lr * 0.25, settings.distill_steps)
    for step in range(settings.distill_steps):
        x, cond = draw()
        i = torch.randint(1, student_steps + 1, (len(x),), generator=generator).float()
        t, t_mid, t_end = i / student_steps, (i - 0.5) / student_steps, (i - 1) / student_steps
        alpha, sigma = alpha_sigma(t)
        z = alpha[:, None] * x + sigma[:, None] * torch.randn(x.shape, generator=generator)
        with torch.no_grad():
            z_mid = ddim_step(teacher.predict_x(z, t, cond), z, t, t_mid)
            x_mid = teacher.predict_x(z_mid, t_mid, cond)
            z_end = torch.where((t_end > 0)[:, None], ddim_step(x_mid, z_mid, t_mid, t_end.clamp(min=1e-4)), x_mid)
            alpha_end, sigma_end = alpha_sigma(t_end)
            ratio = (sigma_end / sigma)[:, None]
            x_target = (z_end - ratio * z) / (alpha_end[:, None] - ratio * alpha[:, None])
        weight = torch.clamp(alpha**2 / sigma**2, min=1.0)  # truncated SNR weighting
        error = (student.predict_x(z, t, cond) - x_target).pow(2).mean(dim=1)
        loss = (weight * error).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        schedule.step()
        if progress is not None and step % 100 == 0:
            progress(f"distil to {student_steps} steps", step, settings.distill_steps)
    return student.eval()


def score(paths: NDArray[np.float64], future: NDArray[np.float64]) -> Scores:
    """ADE/FDE of sample 0, and the best of the K samples (paths: (n, k, HORIZON, 2))."""
    error = np.linalg.norm(paths - future[:, None], axis=-1)  # (n, k, HORIZON)
    ade, fde = error.mean(axis=2), error[:, :, -1]
    return Scores(
        ade_m=float(ade[:, 0].mean()),
        fde_m=float(fde[:, 0].mean()),
        min_ade_m=float(ade.min(axis=1).mean()),
        min_fde_m=float(fde.min(axis=1).mean()),
    )


def _timed_paths(
    model: TrajectoryModel, data: Dataset, k: int, steps: int, seed: int
) -> tuple[NDArray[np.float64], float]:
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    paths = model.paths(data.cond, data.speed, k, steps=steps, generator=generator)
    return paths, (time.perf_counter() - started) * 1000.0 / len(data)


def train_autonomy_model(
    output: Path, settings: TrainSettings = TrainSettings(), *, k: int = 8, progress: Progress | None = None
) -> TrainReport:
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    data = make_dataset(settings.vehicles, settings.seconds, settings.seed)
    scale = np.maximum(_residuals(data).std(axis=0), 0.05)
    config = DiffusionConfig(sampling_steps=STUDENT_STEPS, residual_scale_m=tuple(float(s) for s in scale))
    draw = _batches(data, scale, settings.batch, generator)
    teacher = Denoiser(config)
    train_base(teacher.train(), draw, settings, generator, progress)
    student = teacher.eval()
    steps = TEACHER_STEPS
    while steps > STUDENT_STEPS:
        steps //= 2
        student = distil_round(student, steps, draw, settings, generator, progress)
    held_out = make_dataset(settings.eval_vehicles, settings.eval_seconds, settings.seed + 1000)
    with torch.inference_mode():
        teacher_paths, teacher_ms = _timed_paths(TrajectoryModel(teacher, config), held_out, k, TEACHER_STEPS, 1)
        shipped = TrajectoryModel(student, config)
        student_paths, student_ms = _timed_paths(shipped, held_out, k, STUDENT_STEPS, 1)
    baseline = constant_velocity(held_out.speed)[:, None]
    shipped.save(output)
    return TrainReport(
        samples=len(data),
        params=sum(p.numel() for p in student.parameters()),
        seconds=time.perf_counter() - started,
        baseline=score(baseline, held_out.future),
        teacher=score(teacher_paths, held_out.future),
        student=score(student_paths, held_out.future),
        teacher_ms=teacher_ms,
        student_ms=student_ms,
        k=k,
    )


def tiny_settings() -> TrainSettings:
    """A few steps of everything: proves the script runs end to end (tests)."""
    return replace(
        TrainSettings(), vehicles=12, seconds=8.0, base_steps=5, distill_steps=2, batch=32, eval_vehicles=6,
        eval_seconds=7.0,
    )  # fmt: skip
