"""gRPC against REST on the no-op model: the per-request cost of the Open Inference Protocol service.

One `strata serve` (the gateway benchmark's no-op spec, access on with the admin key) on core 0
serves both; each load generator runs in its own process on core 1: `benchmarks.loadgen` (raw
keep-alive HTTP/1.1) for ``POST /v1/models/noop/predict`` and `benchmarks.grpc_load` (grpcio's
asyncio client, one HTTP/2 channel) for ``ModelInfer``, at concurrency 1 and 16, alternately.

``python -m benchmarks.grpc_overhead --duration 3`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import LOADGEN_CPU, ROOT, Row, cpu_count, load, served
from strata.testing.server import ServerProcess, free_port

BODY = {"inputs": ["ping"]}


def _grpc_load(server: ServerProcess, port: int, concurrency: int, duration_s: float) -> dict[str, float]:
    command = [
        sys.executable, "-m", "benchmarks.grpc_load", "--port", str(port), "--key", server.api_key,
        "--concurrency", str(concurrency), "--duration", str(duration_s),
    ]  # fmt: skip
    if cpu_count() > 1:
        command += ["--cpu", str(LOADGEN_CPU)]
    done = subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=duration_s + 120)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(duration_s: float) -> list[Row]:
    port = free_port()
    rows: list[Row] = []
    with served({**NOOP_SPEC, "gateway": {"grpc_port": port}}) as server:
        for concurrency in (1, 16):
            rest = load(server, "/v1/models/noop/predict", BODY, concurrency=concurrency, duration_s=duration_s)
            grpc = _grpc_load(server, port, concurrency, duration_s)
            assert rest.errors == 0, rest.errors
            assert grpc["errors"] == 0, grpc["errors"]
            grpc_rate = grpc["requests"] / grpc["elapsed_s"]
            rows += [
                Row("grpc", f"REST req/s c={concurrency}", rest.throughput, "req/s"),
                Row("grpc", f"gRPC req/s c={concurrency}", grpc_rate, "req/s"),
                Row("grpc", f"gRPC/REST req/s c={concurrency}", grpc_rate / rest.throughput, "ratio"),
                Row("grpc", f"REST p50 c={concurrency}", rest.percentile_ms(50), "ms"),
                Row("grpc", f"gRPC p50 c={concurrency}", grpc["p50_ms"], "ms"),
                Row("grpc", f"gRPC - REST p50 c={concurrency}", grpc["p50_ms"] - rest.percentile_ms(50), "ms"),
                Row("grpc", f"REST p99 c={concurrency}", rest.percentile_ms(99), "ms"),
                Row("grpc", f"gRPC p99 c={concurrency}", grpc["p99_ms"], "ms"),
            ]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/grpc.json"))
    arguments = parser.parse_args()
    from benchmarks.run import report

    report(run(arguments.duration), {}, arguments.output, Console())
