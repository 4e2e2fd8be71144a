"""What every benchmark shares: result rows, percentiles, a pinned server (Strata or the plain
baseline app), tenant keys, a pinned load generator.

Placement on the 2-core machine: the server runs on core 0 with one torch thread, the load
generator on core 1, and each in-process baseline on core 0 with one torch thread - so the
served figure and its baseline get the same compute. A baseline server (benchmarks.baseline_app)
is placed exactly like Strata: its own process on core 0, never alive at the same time as Strata.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import httpx
import torch
import yaml

from benchmarks.loadgen import corrected_for_coordinated_omission
from benchmarks.loadgen import percentile as percentile  # the benchmarks import it from here
from strata.testing import ServerProcess, free_port

SERVER_CPU = 0
LOADGEN_CPU = 1
ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
    # E of the coordinated-omission correction: the run's median latency (see benchmarks/loadgen.py).
    expected_interval_s: float = 0.0
    summary_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")

    @cached_property
    def corrected_latencies_s(self) -> list[float]:
        """The latencies plus the requests a steady client would have sent during each stall."""
        return corrected_for_coordinated_omission(self.latencies_s, self.expected_interval_s)

    def percentile_ms(self, q: float, *, corrected: bool = False) -> float:
        return percentile(self.corrected_latencies_s if corrected else self.latencies_s, q) * 1000.0

    @property
    def max_ms(self) -> float:
        """The slowest request as measured (the correction never changes the maximum)."""
        return max(self.latencies_s, default=float("nan")) * 1000.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


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


def placement() -> str:
    """Where the servers and the load generator run, in words (for reports)."""
    if cpu_count() > 1:
        return (
            f"servers and in-process baselines on core {SERVER_CPU} with 1 torch thread; "
            f"load generator in its own process on core {LOADGEN_CPU}"
        )
    return "one core: servers, baselines and load generator share it (not pinned)"


class Target(Protocol):
    """A server the load generator can aim at."""

    @property
    def port(self) -> int: ...

    @property
    def api_key(self) -> str: ...


@contextmanager
def served(spec: dict[str, Any]) -> Iterator[ServerProcess]:
    """`strata serve` for ``spec`` on core 0, one torch thread."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.yaml"
        path.write_text(yaml.safe_dump(spec))
        with ServerProcess(path, env=SERVER_ENV, cpus={SERVER_CPU} if cpu_count() > 1 else None) as server:
            yield server


def tenant_key(server: ServerProcess, tenant: str, scopes: Sequence[str] = ("infer",)) -> str:
    """A new API key for ``tenant``, created through the admin API with the server's admin key."""
    with server.http() as admin:
        response = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": list(scopes)})
    response.raise_for_status()
    return str(response.json()["key"])


@dataclass(frozen=True)
class BaselineServer:
    port: int
    api_key: str = "sk-baseline-unused"  # sent like Strata's key, so both get the same request; never checked


@contextmanager
def baseline_served(module: str = "benchmarks.baseline_app", ready_timeout_s: float = 60.0) -> Iterator[BaselineServer]:
    """``python -m module --port N`` (a plain app answering /healthz) on core 0, one torch thread, like `served`."""
    port = free_port()
    command = [sys.executable, "-m", module, "--port", str(port)]
    if cpu_count() > 1:
        command += ["--cpu", str(SERVER_CPU)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **SERVER_ENV}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{module} did not become ready:\n{log.read().decode(errors='replace')}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            yield BaselineServer(port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load(
    server: Target,
    path: str,
    body: dict[str, Any],
    *,
    concurrency: int,
    duration_s: float,
    keep_bodies: int = 2,
    headers: Sequence[str] = (),
) -> Load:
    """``headers``: more 'Name: value' lines, beside the server's API key."""
    with (
        tempfile.NamedTemporaryFile("wb", suffix=".json") as body_file,
        tempfile.NamedTemporaryFile("rb", suffix=".json") as result_file,
    ):
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
            "--output",
            result_file.name,
        ]
        for header in headers:
            command += ["--header", header]
        if cpu_count() > 1:
            command += ["--cpu", str(LOADGEN_CPU)]
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=duration_s + 120)
        output = result_file.read()
    return Load(**json.loads(output))
