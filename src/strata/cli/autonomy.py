"""`strata demo autonomy` and `strata train-autonomy`: the autonomy app's commands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from strata.apps.autonomy.demo import PUBLISHED, run_demo
from strata.apps.autonomy.train import TrainReport, TrainSettings, train_autonomy_model

demo_app = typer.Typer(no_args_is_help=True, help="Built-in demos that start an app and drive it.")
console = Console()


@demo_app.command("autonomy")
def demo_autonomy(
    vehicles: Annotated[int, typer.Option(min=1, max=8192, help="Simulated vehicles.")] = 200,
    rate: Annotated[float, typer.Option(min=0.1, max=20.0, help="Plan requests per vehicle per second.")] = 2.0,
    duration: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="Seconds of planning (after 6 s warm-up).")
    ] = 20.0,
    png: Annotated[Path, typer.Option(help="Where to write the latency and paths figure.")] = Path("autonomy-demo.png"),
) -> None:
    """Serve the autonomy app, stream a simulated fleet's telemetry (10 Hz) and ask for plans."""
    console.print(f"starting the autonomy app; {vehicles} vehicles, 10 Hz telemetry, {rate:g} plans/s each...")
    summary = run_demo(vehicles, rate, duration, png)
    table = Table(title=f"autonomy demo: {vehicles} vehicles, {duration:g} s")
    for column in ("stage", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column)
    for stage, (p50, p95, p99) in summary.percentiles_ms.items():
        table.add_row(stage, f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}")
    console.print(table)
    errors = sum(summary.record.errors.values())
    console.print(
        f"telemetry: {summary.events_per_min:,.0f} events/min accepted (published prototype: "
        f"{PUBLISHED['events_per_min']:,}/min); plans: {summary.plans_per_s:,.0f}/s, median "
        f"{summary.percentiles_ms['plan (total)'][0]:.1f} ms (published: {PUBLISHED['median_ms']:g} ms); "
        f"errors: {errors} {summary.record.errors or ''}"
    )
    console.print(f"wrote {png}")


def train_autonomy(
    output: Annotated[Path, typer.Option(help="Folder to write the model to.")] = Path(
        "src/strata/assets/autonomy-diffusion"
    ),
    base_steps: Annotated[int, typer.Option(min=1, help="Optimiser steps of the teacher.")] = TrainSettings.base_steps,
    distill_steps: Annotated[int, typer.Option(min=1, help="Steps per distillation round.")] = (
        TrainSettings.distill_steps
    ),
    seed: Annotated[int, typer.Option(help="Seed of the fleets, the weights and the batches.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (the shipped weights: 1).")] = 1,
) -> None:
    """Retrain the shipped trajectory diffusion model on the simulated fleet, then distil it to 2 steps."""
    torch.set_num_threads(threads)
    settings = TrainSettings(base_steps=base_steps, distill_steps=distill_steps, seed=seed)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, step: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=step + 100 if step + 100 < total else total)

        report = train_autonomy_model(output, settings, progress=advance)
    print_report(report, output)


def print_report(report: TrainReport, output: Path) -> None:
    table = Table(title=f"held-out fleet, K={report.k} samples per vehicle")
    for column in ("predictor", "ADE m", "FDE m", f"minADE@{report.k} m", f"minFDE@{report.k} m", "ms / vehicle"):
        table.add_column(column)
    rows = (("constant velocity", report.baseline, math.nan), ("teacher (32-step DDIM)", report.teacher,
            report.teacher_ms), ("student (2 steps, distilled)", report.student, report.student_ms))  # fmt: skip
    for name, scores, ms in rows:
        table.add_row(name, f"{scores.ade_m:.3f}", f"{scores.fde_m:.3f}", f"{scores.min_ade_m:.3f}",
                      f"{scores.min_fde_m:.3f}", "" if math.isnan(ms) else f"{ms:.3f}")  # fmt: skip
    console.print(table)
    console.print(
        f"[green]trained[/] {report.params:,} parameters on {report.samples:,} samples in {report.seconds:.0f} s; "
        f"distillation speed-up {report.speedup:.1f}x -> {output}"
    )
