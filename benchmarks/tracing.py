"""Tracing's cost: the same server with tracing off and on (the default), same core, same load, same run.

What tracing adds per request: its ids (a caller's ``traceparent`` parsed, or new ones), the
``traceparent`` response header, and the finished record appended to a buffer; every 50 ms the
buffer is tail-sampled into the trace store. Spans are built only for traces someone reads (or
exports: OTLP is off here, as in a fresh clone).

One app serves both paths measured: the no-op model (access ON with a tenant key, as in
request_path) at concurrency 1 and 16, and MiniLM embeddings at concurrency 64. Each round starts
the server with tracing off and with tracing on, in alternating order (drift hits both alike);
``runs`` rounds, medians reported. The load generator sends no traceparent (a new trace per request).

    python -m benchmarks.tracing --duration 5 --runs 3
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks import embeddings, tracing_cost
from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import Load, Row, load, median, placement
from benchmarks.request_path import BODY, EXPECTED, PATH, WARMUP_S, strata

NAME = "tracing"
RUNS = 3
NOOP_CONCURRENCIES = (1, 16)
EMBEDDINGS_CONCURRENCY = 64
TARGET_THROUGHPUT_RATIO = 0.95  # tracing on, req/s over tracing off
TARGET_ADDED_P50_MS = 0.05  # tracing on, p50 minus tracing off, no-op at c=1

console = Console(stderr=True)


def spec(tracing: bool) -> dict[str, Any]:
    """The no-op model and MiniLM in one app, tracing on (the default, no export) or off."""
    return {
        "name": "bench-tracing",
        "models": NOOP_SPEC["models"] + embeddings.SPEC["models"],
        "deployments": NOOP_SPEC["deployments"] + embeddings.SPEC["deployments"],
        "routes": NOOP_SPEC["routes"] + embeddings.SPEC["routes"],
        "observability": {"tracing": {"enabled": tracing}},
    }


def _cases() -> list[tuple[str, str, dict[str, Any], int]]:
    noop = [(f"no-op c={c}", PATH, BODY, c) for c in NOOP_CONCURRENCIES]
    return [
        *noop,
        (f"embeddings c={EMBEDDINGS_CONCURRENCY}", "/v1/embeddings", embeddings.BODY, EMBEDDINGS_CONCURRENCY),
    ]


def _round(tracing: bool, duration_s: float) -> dict[str, Load]:
    results: dict[str, Load] = {}
    with strata(spec(tracing)) as server:
        for case, path, body, concurrency in _cases():
            load(server, path, body, concurrency=concurrency, duration_s=WARMUP_S, keep_bodies=0)
            results[case] = load(server, path, body, concurrency=concurrency, duration_s=duration_s)
        _check_traced(server.port, tracing)
    for body_text in results[_cases()[0][0]].bodies:
        if json.loads(body_text) != EXPECTED:
            raise AssertionError(f"unexpected answer {body_text!r}, expected {EXPECTED}")
    return results


def _check_traced(port: int, tracing: bool) -> None:
    """The 'on' server really traced (and the 'off' one did not): a request's traceparent, or none."""
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    if ("traceparent" in answer.headers) != tracing:
        raise AssertionError(
            f"tracing {'on' if tracing else 'off'} but traceparent is {answer.headers.get('traceparent')}"
        )


@dataclass(frozen=True)
class Figures:
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int

    @classmethod
    def of(cls, loads: list[Load]) -> Figures:
        return cls(
            median([r.throughput for r in loads]),
            median([r.percentile_ms(50) for r in loads]),
            median([r.percentile_ms(99, corrected=True) for r in loads]),
            sum(r.errors for r in loads),
        )


def run(duration_s: float, runs: int = RUNS) -> list[Row]:
    loads: dict[bool, dict[str, list[Load]]] = {on: {case[0]: [] for case in _cases()} for on in (False, True)}
    for index in range(runs):
        for on in (False, True) if index % 2 == 0 else (True, False):
            console.print(f"  {NAME}: run {index + 1}/{runs}, tracing {'on' if on else 'off'}")
            for case, result in _round(on, duration_s).items():
                loads[on][case].append(result)
    rows: list[Row] = []
    for case, _, _, concurrency in _cases():
        off, on = Figures.of(loads[False][case]), Figures.of(loads[True][case])
        unit = "inputs/s" if case.startswith("embeddings") else "req/s"
        for who, figures in (("off", off), ("on", on)):
            rows += [
                Row(NAME, f"{case} tracing {who} throughput", figures.throughput, unit),
                Row(NAME, f"{case} tracing {who} p50", figures.p50_ms, "ms"),
                Row(NAME, f"{case} tracing {who} p99 (CO-corrected)", figures.p99_ms, "ms"),
            ]
        clean = off.errors == 0 and on.errors == 0
        ratio = on.throughput / off.throughput
        rows.append(
            Row(NAME, f"{case} on/off throughput", ratio, "ratio", f">= {TARGET_THROUGHPUT_RATIO:.0%} of off",
                clean and ratio >= TARGET_THROUGHPUT_RATIO)
        )  # fmt: skip
        added = on.p50_ms - off.p50_ms
        target_p50 = case.startswith("no-op") and concurrency == 1
        rows.append(
            Row(NAME, f"{case} added p50", added, "ms", f"<= {TARGET_ADDED_P50_MS:g} ms" if target_p50 else "",
                clean and added <= TARGET_ADDED_P50_MS if target_p50 else None)
        )  # fmt: skip
        rows.append(Row(NAME, f"{case} errors (all runs, both)", off.errors + on.errors, "requests"))
    return rows + in_process_rows()


def in_process_rows(blocks: int = 20, requests: int = 2000) -> list[Row]:
    """The event loop's CPU per no-op request, tracing off and on (benchmarks.tracing_cost)."""
    console.print(f"  {NAME}: in-process CPU per request, {blocks} blocks of {requests} each way")
    cost = tracing_cost.run(blocks, requests)
    return [
        Row(NAME, "in-process no-op loop CPU per request, tracing off", cost["off_us"], "us"),
        Row(NAME, "in-process no-op loop CPU per request, tracing on", cost["on_us"], "us"),
        Row(NAME, "in-process added CPU per request", cost["added_us"], "us"),
        Row(NAME, "in-process on/off requests per CPU-second", cost["throughput_ratio"], "ratio",
            f">= {TARGET_THROUGHPUT_RATIO:.0%} of off", cost["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO),
    ]  # fmt: skip


def setup(runs: int = RUNS) -> str:
    return (
        "load generator: benchmarks.loadgen (closed loop, keep-alive), its own process; "
        f"placement: {placement()}; one app (no-op with access ON and a tenant key, MiniLM embeddings) "
        f"started with tracing off and on in turn, order alternating; {runs} run(s), medians; no OTLP export"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Tracing on vs off, same run.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured case")
    parser.add_argument("--runs", type=int, default=RUNS, help="rounds (each: off and on)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/tracing.json"))
    args = parser.parse_args()
    from benchmarks.run import report  # run.py imports this module

    report(run(args.duration, args.runs), {NAME: setup(args.runs)}, args.output, Console())


if __name__ == "__main__":
    main()
