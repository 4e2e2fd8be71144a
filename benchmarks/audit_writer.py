"""Who writes the audit trail: the request-path no-op case with its audit rows appended by the
gateway's database thread, by the writer process (the default), or not written at all.

Same server spec as request_path (access on, a tenant key, limits, a budget, an audit row per
request); only ``access.audit_writer`` / ``audit_inference`` change. Each run starts each variant in
turn (order rotating), warms it at c=16, waits ``SETTLE_S`` so the warm-up's own rows are written,
then measures c=1 (p99 corrected for coordinated omission: stalls count) and c=16 (requests/s at
saturation, where a writer that competes for the core costs requests). After the c=16 case the
trail is verified through the admin API, so a writer that fell behind or lost rows shows. Server on
core 0, load generator on core 1, as in every benchmark here.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import Load, Row, load, median, placement, served, tenant_key
from benchmarks.request_path import BODY, PATH, TENANT, with_access
from strata.testing import ServerProcess

NAME = "audit_writer"
RUNS = 3
SETTLE_S = 1.0
VARIANTS: dict[str, dict[str, Any]] = {
    "thread": {"audit_writer": "thread"},
    "process": {"audit_writer": "process"},
    "no audit rows": {"audit_inference": False},
}

console = Console(stderr=True)


def spec_for(variant: str) -> dict[str, Any]:
    spec = copy.deepcopy(with_access(NOOP_SPEC))
    spec["access"].update(VARIANTS[variant])
    return spec


@contextmanager
def _server(variant: str) -> Iterator[ServerProcess]:
    with served(spec_for(variant)) as server:
        server.api_key = tenant_key(server, TENANT)
        yield server


def _chain_rows(server: ServerProcess) -> tuple[bool, int]:
    """The trail's verdict and length, through the admin API (its walk flushes what waits first)."""
    headers = {"Authorization": f"Bearer {server.env['STRATA_ADMIN_KEY']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as admin:
        verdict = admin.get("/v1/admin/audit/verify").raise_for_status().json()
    return bool(verdict["ok"]), int(verdict["rows"])


def run(duration_s: float, runs: int = RUNS) -> list[Row]:
    names = list(VARIANTS)
    singles: dict[str, list[Load]] = {name: [] for name in names}
    saturated: dict[str, list[Load]] = {name: [] for name in names}
    trail: dict[str, list[str]] = {name: [] for name in names}
    for index in range(runs):
        order = names[index % len(names) :] + names[: index % len(names)]  # drift hits each alike
        for name in order:
            console.print(f"  {NAME}: run {index + 1}/{runs}, {name}")
            with _server(name) as server:
                load(server, PATH, BODY, concurrency=16, duration_s=0.5, keep_bodies=0)
                time.sleep(SETTLE_S)
                singles[name].append(load(server, PATH, BODY, concurrency=1, duration_s=duration_s, keep_bodies=0))
                saturated[name].append(load(server, PATH, BODY, concurrency=16, duration_s=duration_s, keep_bodies=0))
                if name != "no audit rows":
                    ok, rows = _chain_rows(server)
                    sent = sum(result.requests for result in (singles[name][-1], saturated[name][-1]))
                    trail[name].append("ok" if ok and rows >= sent else f"ok={ok} rows={rows} < {sent} requests")
    rows_out: list[Row] = []
    for name in names:
        single, full = singles[name], saturated[name]
        p99_corrected = median([r.percentile_ms(99, corrected=True) for r in single])
        rows_out += [
            Row(NAME, f"{name}: c=1 p50", median([r.percentile_ms(50) for r in single]), "ms"),
            Row(NAME, f"{name}: c=1 p99 (CO-corrected)", p99_corrected, "ms"),
            Row(NAME, f"{name}: c=1 p99 (uncorrected)", median([r.percentile_ms(99) for r in single]), "ms"),
            Row(NAME, f"{name}: c=1 max (worst run)", max(r.max_ms for r in single), "ms"),
            Row(NAME, f"{name}: c=16 throughput", median([r.throughput for r in full]), "req/s"),
            Row(NAME, f"{name}: errors (all runs)", sum(r.errors for r in single + full), "requests"),
        ]
        if trail[name]:
            whole = all(verdict == "ok" for verdict in trail[name])
            rows_out.append(
                Row(NAME, f"{name}: trail verified, a row per request (runs)", sum(v == "ok" for v in trail[name]),
                    "runs", f"all {runs}", whole)
            )  # fmt: skip
    return rows_out


def setup(runs: int = RUNS) -> str:
    return (
        f"the request_path no-op spec (access on, tenant key, audit row per request) with access.audit_writer "
        f"thread / process, and with audit_inference false; each variant its own server, in turn, order rotating; "
        f"warm-up 0.5 s at c=16, {SETTLE_S:g} s settle, then c=1 and c=16; {runs} run(s), median; "
        f"load generator: benchmarks.loadgen in its own process; placement: {placement()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="The audit writer: database thread against writer process.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured case")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/audit_writer.json"))
    args = parser.parse_args()
    from benchmarks.run import report  # run.py imports this module

    report(run(args.duration, args.runs), {NAME: setup(args.runs)}, args.output, Console())


if __name__ == "__main__":
    main()
