"""(q) Soak: ten minutes at half capacity with a replica killed every minute (not in CI: it takes
eleven minutes; run it with `strata bench --only soak`, or `python -m benchmarks.soak --minutes 10`).

1. Capacity, measured first in the same run: a closed loop of 16 clients for ``duration_s`` after a
   warm-up; its answers 200 per second.
2. The soak: an open loop (benchmarks/loadgen_open.py, its own process on the load generator's core)
   at half that rate for ``minutes``. Every minute one replica's worker dies, as a segfault or an
   OOM kill would take it (``strata.testing.chaos`` ``crash`` fault: the worker raises a
   BaseException the batcher does not catch); the deployment must retry its requests around it and
   restart it. The server's RSS is read every 10 s.

Goals, from the issue: at least 99.9% of requests answered 200; every killed replica restarted; memory
flat (RSS at the end within ``MAX_RSS_GROWTH_MB`` of its level after the first minute, by when
allocators and caches have warmed up).

The server is `strata serve` with access on (a tenant key, usage and audit per request), on core 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.harness import Row, load, percentile, placement, served, tenant_key
from benchmarks.overload import OpenLoad, finish, rss_mb, start_open_loop
from strata.testing import ServerProcess
from strata.testing.chaos import ChaosControl, Fault

NAME = "soak"
MINUTES = 10.0
KILL_EVERY_S = 60.0
RSS_EVERY_S = 10.0
LOAD_SHARE = 0.5  # of the measured capacity
CAPACITY_CONCURRENCY = 16
DEPLOYMENT = "soak"
PATH = f"/v1/models/{DEPLOYMENT}/predict"
BODY = {"inputs": ["ping"]}
TARGET_SUCCESS = 0.999
MAX_RSS_GROWTH_MB = 32.0

console = Console(stderr=True)


def spec(control_file: Path) -> dict[str, Any]:
    """Two replicas of a 20 ms batch model whose workers the soak kills through ``control_file``. The
    model, not the gateway's CPU, sets the capacity: a kill takes half of it away until the restart."""
    return {
        "name": "bench-soak",
        "models": [
            {
                "name": DEPLOYMENT,
                "kind": "python",
                "entrypoint": "strata.testing.chaos:ChaosModel",
                "options": {"control_file": str(control_file), "sleep_ms": 20},
            }
        ],
        "deployments": [
            {
                "name": DEPLOYMENT,
                "model": DEPLOYMENT,
                "replicas": 2,
                "batching": {"max_batch_size": 8, "max_wait_ms": 1},
                "health": {"check_interval_ms": 50},
            }
        ],
        "routes": [{"name": DEPLOYMENT, "deployment": DEPLOYMENT}],
    }


def restarts(server: ServerProcess, admin_key: str) -> int:
    with server.http() as client:
        reply = client.get("/v1/admin/deployments", headers={"Authorization": f"Bearer {admin_key}"})
    reply.raise_for_status()
    return sum(int(replica["restarts"]) for replica in reply.json()["deployments"][DEPLOYMENT]["replicas"])


def soak(
    server: ServerProcess, key: str, control: ChaosControl, rate: float, length_s: float, folder: Path
) -> tuple[OpenLoad, int, list[tuple[float, float]]]:
    """Run the open loop for ``length_s`` at ``rate``, killing a replica every minute; the load, the
    kills, and the RSS samples (seconds since the start, MB)."""
    process = start_open_loop(server.port, key, rate, length_s, folder, "soak", path=PATH, body=BODY)
    started = time.monotonic()
    kills, samples = 0, [(0.0, rss_mb(server))]
    next_kill, next_sample = KILL_EVERY_S, RSS_EVERY_S
    while (elapsed := time.monotonic() - started) < length_s:
        if elapsed >= next_kill:
            control.set(Fault("crash", replicas=1))  # a new epoch: one replica claims it and dies
            kills += 1
            console.print(f"  {NAME}: {elapsed:5.0f} s - killed a replica ({kills})")
            next_kill += KILL_EVERY_S
        if elapsed >= next_sample:
            samples.append((elapsed, rss_mb(server)))
            next_sample += RSS_EVERY_S
        time.sleep(0.25)
    result = finish(process, folder, "soak", timeout_s=120)
    samples.append((time.monotonic() - started, rss_mb(server)))
    return result, kills, samples


def rows_of(capacity: float, rate: float, result: OpenLoad, kills: int, restarted: int,
            samples: list[tuple[float, float]]) -> list[Row]:  # fmt: skip
    answered = result.count(200)
    total = len(result.statuses)
    success = answered / total if total else 0.0
    failures = Counter(status for status in result.statuses if status != 200)
    latencies = result.latencies(200)
    warmed = max(rss for at, rss in samples if at <= KILL_EVERY_S + RSS_EVERY_S)
    end = samples[-1][1]
    growth = end - warmed
    rows = [
        Row(NAME, f"capacity (answers 200/s, closed loop c={CAPACITY_CONCURRENCY})", capacity, "req/s"),
        Row(NAME, "offered (open loop)", rate, "req/s"),
        Row(NAME, "requests sent", total, "requests"),
        Row(NAME, "answered 200", success, "share", f">= {TARGET_SUCCESS:.1%}", success >= TARGET_SUCCESS),
        Row(NAME, "p50 of answers 200", percentile(latencies, 50) * 1000 if latencies else float("nan"), "ms"),
        Row(NAME, "p99 of answers 200", percentile(latencies, 99) * 1000 if latencies else float("nan"), "ms"),
        Row(NAME, "max of answers 200", max(latencies) * 1000 if latencies else float("nan"), "ms"),
        Row(NAME, "replicas killed", kills, "kills"),
        Row(NAME, "replicas restarted", restarted, "restarts", "= replicas killed", restarted == kills),
        Row(NAME, "server RSS after the first minute", warmed, "MB"),
        Row(NAME, "server RSS at the end", end, "MB"),
        Row(NAME, "server RSS growth after the first minute", growth, "MB", f"<= {MAX_RSS_GROWTH_MB:g} MB (flat)",
            growth <= MAX_RSS_GROWTH_MB),
    ]  # fmt: skip
    rows += [Row(NAME, f"answered {_status(status)}", count, "requests") for status, count in sorted(failures.items())]
    if failures:
        seconds = sorted(
            {int(at) for at, status in zip(result.sent_at_s, result.statuses, strict=True) if status != 200}
        )
        console.print(f"  {NAME}: requests not answered 200 were sent in these seconds of the soak: {seconds[:40]}")
    return rows


def _status(status: int) -> str:
    return {-1: "with a connection error", 0: "dropped (no connection free)"}.get(status, str(status))


def run(duration_s: float, minutes: float = MINUTES) -> list[Row]:
    """``duration_s``: the capacity measurement's length (the soak's own is ``minutes``)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        control = ChaosControl(folder / "control.json")
        control.clear()
        with served(spec(control.path)) as server:
            admin_key, key = server.api_key, tenant_key(server, "bench")
            server.api_key = key  # the load generators send the tenant's key
            load(server, PATH, BODY, concurrency=CAPACITY_CONCURRENCY, duration_s=1.0)  # warm-up, not kept
            measured = load(server, PATH, BODY, concurrency=CAPACITY_CONCURRENCY, duration_s=duration_s)
            capacity = measured.statuses.get("200", 0) / measured.elapsed_s
            rate = capacity * LOAD_SHARE
            console.print(f"  {NAME}: capacity {capacity:,.0f} req/s; {minutes:g} min at {rate:,.0f} req/s")
            result, kills, samples = soak(server, key, control, rate, minutes * 60, folder)
            restarted = restarts(server, admin_key)
    return rows_of(capacity, rate, result, kills, restarted, samples)


def setup() -> str:
    return (
        f"server: `strata serve`, a 2-replica batch model (strata.testing.chaos, 20 ms a batch of up to 8), access "
        f"on with a tenant key; load: benchmarks.loadgen (closed loop, capacity) then benchmarks.loadgen_open "
        f"(open loop at {LOAD_SHARE:.0%} of capacity, latency from each request's scheduled send time); a "
        f"replica's worker killed every {KILL_EVERY_S:g} s; placement: {placement()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Half capacity for ten minutes, a replica killed every minute.")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of the capacity measurement")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    from benchmarks.run import report  # run.py imports this module

    report(run(args.duration, args.minutes), {NAME: setup()}, args.output, Console())


if __name__ == "__main__":
    main()
