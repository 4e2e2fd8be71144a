"""Autonomy plans over the gRPC Drive stream against REST: plan latency p50/p99, same server, same load.

One `strata serve` of the shipped autonomy spec (with ``gateway.grpc_port``, access on with the admin
key) on core 0 serves both; the load generator (`benchmarks.drive_load`) runs in its own process on
core 1, REST and gRPC alternately, each vehicle with one request outstanding, back to back (1 and
16 vehicles: the per-plan cost) or at 10 Hz (16 and 64 vehicles: a fleet at its real rate):
* "plan": a plan for features already held (REST ``POST /v1/autonomy/plan`` on a keep-alive
  connection per vehicle; gRPC one ``DriveRequest`` with a plan on a stream per vehicle);
* "tick": the vehicle's next event and a plan for it (REST: ``POST /v1/telemetry`` then the plan;
  gRPC: one ``DriveRequest`` with both).
The shipped spec's 50 ms latency target stays on: plans admission sheds are counted as refused.

``python -m benchmarks.grpc_autonomy --duration 3`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from benchmarks.harness import LOADGEN_CPU, ROOT, Row, cpu_count, served
from strata.apps.autonomy.demo import autonomy_spec_path
from strata.testing.server import ServerProcess, free_port

# (vehicles, requests per second per vehicle; 0: back to back), tick (event + plan) or plan only.
CASES = ((1, 0.0, False), (16, 0.0, False), (1, 0.0, True), (16, 10.0, True), (64, 10.0, True))


def _spec(grpc_port: int) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(autonomy_spec_path().read_text())
    spec["gateway"]["grpc_port"] = grpc_port
    return spec


def _drive(
    server: ServerProcess, mode: str, port: int, case: tuple[int, float, bool], duration_s: float
) -> dict[str, float]:
    vehicles, hz, tick = case
    command = [
        sys.executable, "-m", "benchmarks.drive_load", "--mode", mode, "--port", str(port), "--key", server.api_key,
        "--vehicles", str(vehicles), "--hz", str(hz), "--duration", str(duration_s),
    ]  # fmt: skip
    if tick:
        command.append("--tick")
    if cpu_count() > 1:
        command += ["--cpu", str(LOADGEN_CPU)]
    done = subprocess.run(command, capture_output=True, cwd=ROOT, timeout=duration_s + 120)
    if done.returncode != 0:
        raise RuntimeError(f"drive_load --mode {mode} failed:\n{done.stderr.decode()[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def setup() -> str:
    one, five, fifteen = os.getloadavg()
    return (f"{cpu_count()}-core machine shared with other sessions' tests and benchmarks; load average at the end "
            f"of the run {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min): above 2 the server and load "
            "generator shared their cores with others")  # fmt: skip


def run(duration_s: float) -> list[Row]:
    grpc_port = free_port()
    rows: list[Row] = []
    with served(_spec(grpc_port)) as server:
        for vehicles, hz, tick in CASES:
            case = f"{'tick' if tick else 'plan'} v={vehicles} {f'{hz:g} Hz' if hz else 'back to back'}"
            rest = _drive(server, "rest", server.port, (vehicles, hz, tick), duration_s)
            grpc = _drive(server, "grpc", grpc_port, (vehicles, hz, tick), duration_s)
            for name, result in (("REST", rest), ("gRPC", grpc)):
                rate = result["plans"] / result["elapsed_s"]
                rows += [
                    Row("grpc_autonomy", f"{name} plans/s {case}", rate, "plans/s"),
                    Row("grpc_autonomy", f"{name} p50 {case}", result["p50_ms"], "ms"),
                    Row("grpc_autonomy", f"{name} p99 {case}", result["p99_ms"], "ms", "< 45 ms",
                        result["p99_ms"] < 45.0),
                    Row("grpc_autonomy", f"{name} refused {case}", result["errors"], "requests"),
                ]  # fmt: skip
            rows.append(Row("grpc_autonomy", f"gRPC - REST p50 {case}", grpc["p50_ms"] - rest["p50_ms"], "ms"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/grpc_autonomy.json"))
    arguments = parser.parse_args()
    from benchmarks.run import report

    rows = run(arguments.duration)
    report(rows, {"grpc_autonomy": setup()}, arguments.output, Console())
