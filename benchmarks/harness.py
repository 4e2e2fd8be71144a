"""What every benchmark shares: result rows, percentiles, a pinned server, a pinned load generator.

Placement on the 2-core machine: the server runs on core 0 with one torch thread, the load
generator on core 1, and each in-process baseline on core 0 with one torch thread - so the
served figure and its baseline get the same compute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from strata.testing import ServerProcess

SERVER_CPU = 0
LOADGEN_CPU = 1


@dataclass(frozen=True)
class Row:
    benchmark: str
    case: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Load:
    """What the load generator saw."""

    requests: int
    elapsed_s: float
    statuses: dict[str, int]
    latencies_s: list[float]
    bodies: list[str]

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


@contextmanager
def pinned_here(cpu: int = SERVER_CPU) -> Iterator[None]:
    """Run an in-process baseline on one core with one torch thread, like the server."""
    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)


@contextmanager
def served(spec: dict[str, Any]) -> Iterator[ServerProcess]:
    """`strata serve` for ``spec`` on core 0, one torch thread."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.yaml"
        path.write_text(yaml.safe_dump(spec))
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with ServerProcess(path, env=env, cpus={SERVER_CPU} if cpu_count() > 1 else None) as server:
            yield server


def load(
    server: ServerProcess, path: str, body: dict[str, Any], *, concurrency: int, duration_s: float, keep_bodies: int = 2
) -> Load:
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as body_file:
        body_file.write(json.dumps(body).encode())
        body_file.flush()
        command = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--port",
            str(server.port),
            "--path",
            path,
            "--body-file",
            body_file.name,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration_s),
            "--keep-bodies",
            str(keep_bodies),
            "--header",
            f"Authorization: Bearer {server.api_key}",
        ]
        if cpu_count() > 1:
            command += ["--cpu", str(LOADGEN_CPU)]
        root = Path(__file__).resolve().parent.parent
        output = subprocess.run(command, check=True, capture_output=True, cwd=root, timeout=duration_s + 120).stdout
    return Load(**json.loads(output))
