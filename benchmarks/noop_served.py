"""The no-op request with access on (the request_path case), against whatever Strata is importable.

For before/after figures across revisions: the request_path benchmark imports today's code, so an
older Strata is measured by pointing PYTHONPATH at its checkout first:

    git worktree add /tmp/before REV
    PYTHONPATH=/tmp/before/src:. .venv/bin/python -m benchmarks.noop_served --output before.json

This module imports only what every revision has (the harness, the gateway benchmark's spec); the
spec is the request_path one, written out so an old checkout needs nothing new.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import load, served, tenant_key

TENANT, PATH, BODY = "bench", "/v1/models/noop/predict", {"inputs": ["ping"]}
LIMITS = {"requests_per_minute": 100_000_000, "tokens_per_minute": 100_000_000}


def spec() -> dict[str, Any]:
    access = {
        "per_key": LIMITS,
        "per_tenant": LIMITS,
        "budgets": [{"tenant": TENANT, "max_tokens": 10**15, "max_cost": 1e12}],
        "prices": [{"deployment": "noop", "per_compute_second": 0.001}],
        "audit_inference": True,
    }
    return {**NOOP_SPEC, "access": access}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    rows = []
    with served(spec()) as server:
        server.api_key = tenant_key(server, TENANT)
        for concurrency in (1, 16):
            result = load(server, PATH, BODY, concurrency=concurrency, duration_s=args.duration)
            row = {
                "concurrency": concurrency,
                "requests_per_s": result.throughput,
                "p50_ms": result.percentile_ms(50),
                "p99_ms": result.percentile_ms(99),
                "p99_corrected_ms": result.percentile_ms(99, corrected=True),
                "max_ms": result.max_ms,
                "errors": result.errors,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
