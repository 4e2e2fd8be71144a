"""(i) The request path: Strata's gateway against a plain Starlette baseline, same core, same load.

No-op model. The baseline (benchmarks/baseline_app.py) is a plain Starlette + uvicorn app with
uvloop + httptools running the same EchoModel through a hand-written asyncio batcher (batch of
one, no wait, like the Strata spec). Strata serves that model with access ON, as a tenant would
hit it: a tenant key created through the admin API, per-key and per-tenant rate limits (set high
enough never to trigger), a token and cost budget for the tenant (so the budget check runs),
usage and an audit row per inference. Both servers run in turn in their own process on core 0 -
never both at once, since an idle Strata still does background work - and the load generator in
its own process on core 1, at concurrency 1 and 16, with the same requests.

Embeddings: Strata serving MiniLM at concurrency 64 (access ON the same way) against the same
model called in-process on full batches, on the same core: the in-process ceiling.

Each case runs ``runs`` times (3 by default; servers restarted each round, the order of baseline
and Strata alternating) and reports the median; max latency is the worst of the runs. p99 is
corrected for coordinated omission (see benchmarks/loadgen.py: E is the run's own median latency),
the uncorrected p99 is reported next to it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import embeddings
from benchmarks.access import LIMITS
from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import (
    Load,
    Row,
    Target,
    baseline_served,
    load,
    median,
    placement,
    served,
    tenant_key,
)

NAME = "request_path"
RUNS = 3
CONCURRENCIES = (1, 16)
EMBEDDINGS_CONCURRENCY = 64
WARMUP_S = 0.5
TENANT = "bench"
PATH = "/v1/models/noop/predict"
BODY = {"inputs": ["ping"]}
EXPECTED = {"model": "noop", "outputs": ["ping"]}

TARGET_THROUGHPUT_RATIO = 0.75  # Strata req/s at c=16 over the baseline's
TARGET_ADDED_P50_MS = 0.1  # Strata p50 minus the baseline's, c=1
TARGET_P99_RATIO = 1.5  # Strata p99 over the baseline's (corrected), c=1 and c=16
TARGET_CEILING_RATIO = 0.95  # served embeddings at c=64 over the in-process ceiling

console = Console(stderr=True)


def with_access(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with access ON as a tenant meets it: limits that never trigger, a budget, usage and audit."""
    deployments = [deployment["name"] for deployment in spec["deployments"]]
    access = {
        **LIMITS,
        "budgets": [{"tenant": TENANT, "max_tokens": 10**15, "max_cost": 1e12}],
        "prices": [{"deployment": name, "per_compute_second": 0.001} for name in deployments],
        "audit_inference": True,
    }
    return {**spec, "access": access}


@contextmanager
def strata(spec: dict[str, Any]) -> Iterator[Target]:
    """Strata serving ``spec`` with access ON; the load generator will send a fresh tenant key."""
    with served(with_access(spec)) as server:
        server.api_key = tenant_key(server, TENANT)
        yield server


def _noop_loads(server: AbstractContextManager[Target], duration_s: float) -> dict[int, Load]:
    with server as target:
        load(target, PATH, BODY, concurrency=max(CONCURRENCIES), duration_s=WARMUP_S, keep_bodies=0)  # not kept
        loads = {c: load(target, PATH, BODY, concurrency=c, duration_s=duration_s) for c in CONCURRENCIES}
    for result in loads.values():
        for body in result.bodies:
            if json.loads(body) != EXPECTED:  # both servers must do the same work
                raise AssertionError(f"unexpected answer {body!r}, expected {EXPECTED}")
    return loads


def _served_embeddings(duration_s: float) -> Load:
    with strata(embeddings.SPEC) as server:
        load(server, "/v1/embeddings", embeddings.BODY, concurrency=EMBEDDINGS_CONCURRENCY, duration_s=WARMUP_S)
        return load(
            server, "/v1/embeddings", embeddings.BODY, concurrency=EMBEDDINGS_CONCURRENCY, duration_s=duration_s
        )


@dataclass(frozen=True)
class Figures:
    """One server at one concurrency over all runs: medians, the worst max, the errors summed."""

    throughput: float
    p50_ms: float
    p99_ms: float  # corrected for coordinated omission
    p99_raw_ms: float
    max_ms: float
    errors: int

    @classmethod
    def of(cls, loads: list[Load]) -> Figures:
        return cls(
            median([r.throughput for r in loads]),
            median([r.percentile_ms(50) for r in loads]),
            median([r.percentile_ms(99, corrected=True) for r in loads]),
            median([r.percentile_ms(99) for r in loads]),
            max(r.max_ms for r in loads),
            sum(r.errors for r in loads),
        )

    def rows(self, who: str, concurrency: int, unit: str = "req/s") -> list[Row]:
        case = f"{who} c={concurrency}"
        return [
            Row(NAME, f"{case} throughput", self.throughput, unit),
            Row(NAME, f"{case} p50", self.p50_ms, "ms"),
            Row(NAME, f"{case} p99 (CO-corrected)", self.p99_ms, "ms"),
            Row(NAME, f"{case} p99 (uncorrected)", self.p99_raw_ms, "ms"),
            Row(NAME, f"{case} max latency (worst run)", self.max_ms, "ms"),
            Row(NAME, f"{case} errors (all runs)", self.errors, "requests"),
        ]


def compare(baseline: Figures, served: Figures, concurrency: int) -> list[Row]:
    """The target rows for one concurrency; a target is only met without errors on either side."""
    clean = baseline.errors == 0 and served.errors == 0
    rows = []
    if concurrency == max(CONCURRENCIES):
        ratio = served.throughput / baseline.throughput
        rows.append(
            Row(NAME, f"strata/baseline throughput c={concurrency}", ratio, "ratio",
                f">= {TARGET_THROUGHPUT_RATIO:.0%} of baseline", clean and ratio >= TARGET_THROUGHPUT_RATIO)
        )  # fmt: skip
    if concurrency == 1:
        added = served.p50_ms - baseline.p50_ms
        rows.append(
            Row(NAME, f"strata added p50 c={concurrency}", added, "ms",
                f"<= {TARGET_ADDED_P50_MS:g} ms over baseline", clean and added <= TARGET_ADDED_P50_MS)
        )  # fmt: skip
    p99_ratio = served.p99_ms / baseline.p99_ms
    rows.append(
        Row(NAME, f"strata/baseline p99 c={concurrency}", p99_ratio, "ratio",
            f"<= {TARGET_P99_RATIO:g}x baseline (CO-corrected)", clean and p99_ratio <= TARGET_P99_RATIO)
    )  # fmt: skip
    return rows


def setup(runs: int = RUNS) -> str:
    """How this benchmark was run, in words: which load generator, where everything ran."""
    return (
        "load generator: benchmarks.loadgen (Python, asyncio + uvloop, keep-alive HTTP/1.1 closed loop), "
        f"its own process; placement: {placement()}; baseline: benchmarks.baseline_app (Starlette on uvicorn "
        "+ uvloop + httptools), run in turn with Strata, one server up at a time; "
        f"{runs} run(s) per case, median (max latency: worst run); p99 corrected for coordinated omission "
        "(HdrHistogram's expected-interval method, E = the run's median latency), uncorrected p99 also shown"
    )


def run(duration_s: float, runs: int = RUNS) -> list[Row]:
    noop: dict[str, dict[int, list[Load]]] = {who: {c: [] for c in CONCURRENCIES} for who in ("baseline", "strata")}
    servers: dict[str, Callable[[], AbstractContextManager[Target]]] = {
        "baseline": baseline_served,
        "strata": lambda: strata(NOOP_SPEC),
    }
    ceilings: list[float] = []
    served_embeddings: list[Load] = []
    model = embeddings.load_model()
    for index in range(runs):
        order = ("baseline", "strata") if index % 2 == 0 else ("strata", "baseline")  # drift hits both alike
        for who in order:
            console.print(f"  {NAME}: run {index + 1}/{runs}, no-op on {who}")
            for concurrency, result in _noop_loads(servers[who](), duration_s).items():
                noop[who][concurrency].append(result)
        console.print(f"  {NAME}: run {index + 1}/{runs}, embeddings ceiling and served")
        if index % 2 == 0:
            ceilings.append(embeddings.ceiling(duration_s, model))
            served_embeddings.append(_served_embeddings(duration_s))
        else:
            served_embeddings.append(_served_embeddings(duration_s))
            ceilings.append(embeddings.ceiling(duration_s, model))
    rows: list[Row] = []
    for concurrency in CONCURRENCIES:
        baseline, strata_figures = (Figures.of(noop[who][concurrency]) for who in ("baseline", "strata"))
        rows += baseline.rows("baseline no-op", concurrency)
        rows += strata_figures.rows("strata no-op", concurrency)
        rows += compare(baseline, strata_figures, concurrency)
    best = median(ceilings)
    served_figures = Figures.of(served_embeddings)
    ratio = served_figures.throughput / best
    rows.append(Row(NAME, f"embeddings in-process ceiling (batch {embeddings.BATCH})", best, "inputs/s"))
    rows += served_figures.rows("strata embeddings", EMBEDDINGS_CONCURRENCY, "inputs/s")
    met = served_figures.errors == 0 and ratio >= TARGET_CEILING_RATIO
    rows.append(
        Row(NAME, f"strata embeddings/ceiling c={EMBEDDINGS_CONCURRENCY}", ratio, "ratio",
            f">= {TARGET_CEILING_RATIO:.0%} of in-process ceiling", met)
    )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Strata's request path against a plain Starlette baseline.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured case")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per case (the median is reported)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/request_path.json"))
    args = parser.parse_args()
    from benchmarks.run import report  # run.py imports this module

    report(run(args.duration, args.runs), {NAME: setup(args.runs)}, args.output, Console())


if __name__ == "__main__":
    main()
