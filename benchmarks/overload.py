"""(k) Overload: the default app's embeddings deployment (`make serve`: MiniLM, batches of 32,
``targets.latency_p99_ms: 200``) at 1x, 2x, 4x and 10x its capacity, and two tenants, one flooding.

1. Capacity, measured first in the same run: after a warm-up, a closed loop with as many clients as
   the deployment's admission limit then (at most 64, its ceiling: 2 x max_batch_size), so that none
   is shed; its answers per second.
2. Each multiple: an open loop (benchmarks/loadgen_open.py, its own process) at that multiple of
   capacity. Reported: admitted p99 against the target (goal: at most 1.5x), goodput (answers 200
   per second) against the 1x goodput (goal at 10x: at least 90%), reject latency p99 (goal: under
   50 ms) and the share of rejects carrying Retry-After (goal: all), the server's RSS after each.
3. Fair share: tenant `flood` at 10x capacity and tenant `quiet` at a tenth of capacity, each from
   its own load generator process, at once: quiet's success rate (goal: at least 99%) and p99
   (goal: within the target).

The server runs the default app as `strata serve` would (access on: each tenant has its own key) on
core 0 with one torch thread; the load generators on core 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from benchmarks.harness import LOADGEN_CPU, ROOT, Row, cpu_count, load, percentile, placement, served, tenant_key
from strata.testing import ServerProcess

NAME = "overload"
DEFAULT_APP = ROOT / "src" / "strata" / "apps" / "default.yaml"
DEPLOYMENT = "embeddings"
PATH = "/v1/embeddings"
BODY = {
    "model": "all-MiniLM-L6-v2",
    "input": "Strata batches requests from many clients into one forward pass of the embedding model.",
    "encoding_format": "base64",
}
MULTIPLES = (1, 2, 4, 10)
CAPACITY_CONCURRENCY = 64  # the ceiling of the deployment's automatic admission limit: 2 x max_batch_size
QUIET_SHARE = 0.1  # the quiet tenant's usual rate, as a share of capacity
TARGET_P99_RATIO = 1.5
TARGET_GOODPUT_RATIO = 0.9
TARGET_REJECT_MS = 50.0
TARGET_QUIET_SUCCESS = 0.99
MAX_RSS_GROWTH_MB = 64.0

console = Console(stderr=True)


@dataclass(frozen=True)
class OpenLoad:
    """What one open-loop load generator saw."""

    rate: float
    elapsed_s: float
    sent_at_s: list[float]
    latencies_s: list[float]
    statuses: list[int]
    retry_after: list[bool]
    connections: int = 0

    def latencies(self, status: int) -> list[float]:
        return [latency for latency, code in zip(self.latencies_s, self.statuses, strict=True) if code == status]

    def count(self, status: int) -> int:
        return sum(code == status for code in self.statuses)

    @property
    def duration_s(self) -> float:
        return len(self.statuses) / self.rate

    @property
    def goodput(self) -> float:
        return self.count(200) / self.duration_s

    @property
    def retry_after_share(self) -> float:
        flags = [flag for flag, code in zip(self.retry_after, self.statuses, strict=True) if code == 503]
        return sum(flags) / len(flags) if flags else 1.0


def start_open_loop(
    port: int,
    key: str,
    rate: float,
    duration_s: float,
    folder: Path,
    name: str,
    *,
    path: str = PATH,
    body: dict[str, Any] = BODY,
) -> subprocess.Popen[bytes]:
    """Start benchmarks.loadgen_open in its own process (on the load generator's core); ``finish`` reads it."""
    body_file = folder / f"{name}-body.json"
    body_file.write_text(json.dumps(body))
    command = [
        sys.executable, "-m", "benchmarks.loadgen_open", "--port", str(port), "--path", path,
        "--body-file", str(body_file), "--rate", f"{rate:.3f}", "--duration", str(duration_s),
        "--header", f"Authorization: Bearer {key}", "--output", str(folder / f"{name}.json"),
    ]  # fmt: skip
    if cpu_count() > 1:
        command += ["--cpu", str(LOADGEN_CPU)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], folder: Path, name: str, timeout_s: float) -> OpenLoad:
    _, stderr = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"load generator {name} failed: {stderr.decode(errors='replace')}")
    return OpenLoad(**json.loads((folder / f"{name}.json").read_text()))


def open_loop(port: int, key: str, rate: float, duration_s: float, name: str) -> OpenLoad:
    with tempfile.TemporaryDirectory() as folder:
        process = start_open_loop(port, key, rate, duration_s, Path(folder), name)
        return finish(process, Path(folder), name, duration_s + 120)


def admission_limit(server: ServerProcess) -> int:
    """The deployment's admission limit now: a closed loop of that many clients is never shed."""
    with server.http() as admin:
        reply = admin.get("/v1/admin/deployments")
    reply.raise_for_status()
    limit = reply.json()["deployments"][DEPLOYMENT]["admission"]["limit"]
    return max(1, min(CAPACITY_CONCURRENCY, int(limit or CAPACITY_CONCURRENCY)))


def rss_mb(server: ServerProcess) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def default_app() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(DEFAULT_APP.read_text())
    return spec


def target_ms(spec: dict[str, Any]) -> float:
    deployment = next(d for d in spec["deployments"] if d["name"] == DEPLOYMENT)
    return float(deployment["targets"]["latency_p99_ms"])


def _ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000.0 if values else float("nan")


def multiple_rows(multiple: int, result: OpenLoad, baseline_goodput: float, target: float, rss: float) -> list[Row]:
    case = f"{multiple}x capacity"
    admitted_p99 = _ms(result.latencies(200), 99)
    rejects = result.latencies(503)
    reject_p99 = _ms(rejects, 99)
    other = len(result.statuses) - result.count(200) - result.count(503)
    rows = [
        Row(NAME, f"{case}: offered", len(result.statuses) / result.duration_s, "req/s"),
        Row(NAME, f"{case}: goodput (200/s)", result.goodput, "req/s"),
        Row(NAME, f"{case}: shed (503)", result.count(503) / len(result.statuses), "share"),
        Row(NAME, f"{case}: other statuses", other, "requests", "0", other == 0),
        Row(NAME, f"{case}: admitted p50", _ms(result.latencies(200), 50), "ms"),
        Row(NAME, f"{case}: admitted p99", admitted_p99, "ms",
            f"<= {TARGET_P99_RATIO:g}x target ({target:g} ms)", admitted_p99 <= TARGET_P99_RATIO * target),
        Row(NAME, f"{case}: server RSS after", rss, "MB"),
    ]  # fmt: skip
    if rejects:
        rows += [
            Row(NAME, f"{case}: reject p99", reject_p99, "ms", f"< {TARGET_REJECT_MS:g} ms",
                reject_p99 < TARGET_REJECT_MS),
            Row(NAME, f"{case}: rejects with Retry-After", result.retry_after_share, "share", "all",
                result.retry_after_share == 1.0),
        ]  # fmt: skip
    if multiple == max(MULTIPLES):
        ratio = result.goodput / baseline_goodput
        rows.append(
            Row(NAME, f"goodput {multiple}x / 1x", ratio, "ratio", f">= {TARGET_GOODPUT_RATIO:.0%}",
                ratio >= TARGET_GOODPUT_RATIO)
        )  # fmt: skip
    return rows


def fair_share_rows(server: ServerProcess, capacity: float, duration_s: float, target: float) -> list[Row]:
    flood_key, quiet_key = tenant_key(server, "flood"), tenant_key(server, "quiet")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        flood_process = start_open_loop(server.port, flood_key, capacity * max(MULTIPLES), duration_s, folder, "flood")
        quiet_process = start_open_loop(server.port, quiet_key, capacity * QUIET_SHARE, duration_s, folder, "quiet")
        flood = finish(flood_process, folder, "flood", duration_s + 120)
        quiet = finish(quiet_process, folder, "quiet", duration_s + 120)
    success = quiet.count(200) / len(quiet.statuses)
    quiet_p99 = _ms(quiet.latencies(200), 99)
    return [
        Row(NAME, "fair share: flood offered (10x)", len(flood.statuses) / flood.duration_s, "req/s"),
        Row(NAME, "fair share: flood goodput", flood.goodput, "req/s"),
        Row(NAME, "fair share: quiet offered", len(quiet.statuses) / quiet.duration_s, "req/s"),
        Row(NAME, "fair share: quiet success", success, "share", f">= {TARGET_QUIET_SUCCESS:.0%}",
            success >= TARGET_QUIET_SUCCESS),
        Row(NAME, "fair share: quiet p99", quiet_p99, "ms", f"<= target ({target:g} ms)", quiet_p99 <= target),
    ]  # fmt: skip


def run(duration_s: float) -> list[Row]:
    spec = default_app()
    target = target_ms(spec)
    rows: list[Row] = []
    with served(spec) as server:
        key = tenant_key(server, "bench")
        console.print(f"  {NAME}: capacity (closed loop at the admission limit)")
        load(server, PATH, BODY, concurrency=CAPACITY_CONCURRENCY, duration_s=1.0)  # warm-up, not kept
        concurrency = admission_limit(server)
        measured = load(server, PATH, BODY, concurrency=concurrency, duration_s=duration_s)
        capacity = measured.statuses.get("200", 0) / measured.elapsed_s
        rows += [
            Row(NAME, f"capacity (answers 200/s, closed loop c={concurrency})", capacity, "req/s"),
            Row(NAME, "capacity: p99", measured.percentile_ms(99), "ms"),
            Row(NAME, "capacity: not 200", measured.errors, "requests"),
        ]
        rss = [rss_mb(server)]
        baseline_goodput = float("nan")
        for multiple in MULTIPLES:
            console.print(f"  {NAME}: open loop at {multiple}x capacity ({capacity * multiple:,.0f} req/s)")
            result = open_loop(server.port, key, capacity * multiple, duration_s, f"x{multiple}")
            rss.append(rss_mb(server))
            if multiple == 1:
                baseline_goodput = result.goodput
            rows += multiple_rows(multiple, result, baseline_goodput, target, rss[-1])
        console.print(f"  {NAME}: fair share (flood at 10x, quiet at {QUIET_SHARE:g}x)")
        rows += fair_share_rows(server, capacity, duration_s, target)
        rss.append(rss_mb(server))
    growth = max(rss) - rss[0]
    rows.append(
        Row(NAME, "server RSS growth under overload", growth, "MB", f"<= {MAX_RSS_GROWTH_MB:g} MB (flat)",
            growth <= MAX_RSS_GROWTH_MB)
    )  # fmt: skip
    return rows


def setup() -> str:
    return (
        "server: the default app (src/strata/apps/default.yaml, access on, a key per tenant); load: "
        "benchmarks.loadgen (closed loop, capacity) and benchmarks.loadgen_open (open loop, one process per "
        f"tenant); placement: {placement()}; latency measured from each request's scheduled send time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="The default app's embeddings at 1x..10x capacity, and fair share.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per case")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/overload.json"))
    args = parser.parse_args()
    from benchmarks.run import report  # run.py imports this module

    report(run(args.duration), {NAME: setup()}, args.output, Console())


if __name__ == "__main__":
    main()
