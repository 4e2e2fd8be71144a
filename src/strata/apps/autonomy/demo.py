"""`strata demo autonomy`: serve the autonomy app, drive it with a simulated fleet, report and plot."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from strata.apps.autonomy.fleet import STAGES, FleetDriver, FleetRecord
from strata.apps.autonomy.wire import LeanClient
from strata.testing import ServerProcess

PUBLISHED = {"median_ms": 45.0, "events_per_min": 160_000}


def autonomy_spec_path() -> Path:
    return Path(str(resources.files("strata.apps") / "autonomy" / "autonomy.yaml"))


@dataclass(frozen=True)
class DemoSummary:
    record: FleetRecord
    duration_s: float
    events_per_min: float
    plans_per_s: float
    percentiles_ms: dict[str, tuple[float, float, float]]  # stage -> p50, p95, p99


def summarise(record: FleetRecord, duration_s: float) -> DemoSummary:
    stages = {"plan (total)": record.plan_latency_s, "plan + wait for tick": record.unaligned_latency_s,
              **{s: record.stages_s[s] for s in STAGES},
              "telemetry post": record.ingest_latency_s}  # fmt: skip
    percentiles = {
        name: tuple(
            float(np.percentile(np.array(values) * 1000.0, q)) if values else float("nan") for q in (50, 95, 99)
        )
        for name, values in stages.items()
    }
    return DemoSummary(
        record=record,
        duration_s=duration_s,
        events_per_min=record.events / duration_s * 60.0,
        plans_per_s=record.plans / duration_s,
        percentiles_ms=percentiles,  # type: ignore[arg-type]
    )


async def drive(
    url: str, headers: dict[str, str], vehicles: int, rate_hz: float, duration_s: float, *, seed: int = 7
) -> FleetRecord:
    client = LeanClient(url, headers)
    try:
        return await FleetDriver(client, vehicles, rate_hz, seed=seed).run(duration_s)
    finally:
        await client.close()


def run_demo(vehicles: int, rate_hz: float, duration_s: float, png: Path, log_dir: Path | None = None) -> DemoSummary:
    with tempfile.TemporaryDirectory() as folder:
        spec = yaml.safe_load(autonomy_spec_path().read_text())
        spec["extensions"][0]["options"]["max_vehicles"] = max(vehicles, 64)
        path = Path(folder) / "autonomy.yaml"
        path.write_text(yaml.safe_dump(spec))
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with ServerProcess(path, env=env) as server:
            record = asyncio.run(drive(server.url, server.headers, vehicles, rate_hz, duration_s))
    summary = summarise(record, duration_s)
    plot(summary, png)
    return summary


def plot(summary: DemoSummary, png: Path) -> None:
    record = summary.record
    figure = Figure(figsize=(13, 5))  # a bare Figure renders with Agg: no pyplot, no display, no global state
    timeline, paths = figure.subplots(1, 2)
    at = np.array(record.plan_at_s)
    latency = np.array(record.plan_latency_s) * 1000.0
    timeline.scatter(at, latency, s=2, alpha=0.3, label="plan latency")
    if len(at):
        bins = np.arange(0.0, max(at.max(), 1.0) + 1.0, 1.0)
        index = np.digitize(at, bins)
        p50 = [np.percentile(latency[index == i], 50) if (index == i).any() else np.nan for i in range(1, len(bins))]
        p99 = [np.percentile(latency[index == i], 99) if (index == i).any() else np.nan for i in range(1, len(bins))]
        timeline.plot(bins[:-1] + 0.5, p50, label="p50 per second")
        timeline.plot(bins[:-1] + 0.5, p99, label="p99 per second")
    timeline.axhline(PUBLISHED["median_ms"], color="grey", linestyle="--", label="published median (45 ms)")
    timeline.set(xlabel="time (s)", ylabel="plan latency as the vehicle sees it (ms)", title="Plan latency over time")
    timeline.legend(loc="upper right", fontsize=8)
    for vehicle, tracked in record.tracked.items():
        plan = tracked["plan"]
        assert isinstance(plan, dict)
        chosen = np.array(plan["plan"]["waypoints"])
        truth = np.asarray(tracked["truth"])
        start = truth[0] if len(truth) else chosen[0]  # where the vehicle was when its plan came back
        for alternative in plan["alternatives"]:
            other = np.array(alternative["waypoints"]) - start
            paths.plot(other[:, 0], other[:, 1], color="lightgrey", linewidth=1)
        line = paths.plot(*(chosen - start).T, marker="o", markersize=3, label=f"{vehicle} plan")[0]
        if len(truth):
            paths.plot(*(truth - start).T, color=line.get_color(), linestyle="--", label=f"{vehicle} truth")
    paths.set(xlabel="x (m, from the vehicle)", ylabel="y (m)", title="Chosen plans (solid), truth (dashed)")
    paths.axis("equal")
    paths.legend(fontsize=7)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
