"""Runs the selected benchmarks, prints one table and writes the rows as JSON."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import (
    access,
    audit_writer,
    autonomy,
    autoscaling,
    distributed,
    embeddings,
    engines,
    gateway,
    grpc_autonomy,
    grpc_overhead,
    guardrails_eval,
    guardrails_stream,
    onnx,
    overload,
    request_path,
    response_cache,
    retrieval,
    soak,
    structured,
    textgen,
    tracing,
    workflows,
)
from benchmarks.harness import Row, cpu_count, placement

BENCHMARKS: dict[str, Callable[[float], list[Row]]] = {
    "embeddings": embeddings.run,
    "gateway": gateway.run,
    "textgen": textgen.run,
    "access": access.run,
    "autonomy": autonomy.run,
    "workflows": workflows.run,
    "autoscaling": autoscaling.run,
    "distributed": distributed.run,
    "request_path": request_path.run,
    "audit_writer": audit_writer.run,
    "tracing": tracing.run,
    "overload": overload.run,
    "guardrails_eval": guardrails_eval.run,
    "guardrails_stream": guardrails_stream.run,
    "engines": engines.run,
    "structured": structured.run,
    "grpc": grpc_overhead.run,
    "grpc_autonomy": grpc_autonomy.run,
    "retrieval": retrieval.run,
    "onnx": onnx.run,
    "response_cache": response_cache.run,
    "soak": soak.run,
}
# Run only when named (`--only`): too long for the default run of every benchmark.
ON_REQUEST = frozenset({"soak"})
# How a benchmark was run, in words (load generator, isolation), where it is more than `placement()`.
SETUPS: dict[str, Callable[[], str]] = {
    "request_path": request_path.setup,
    "audit_writer": audit_writer.setup,
    "tracing": tracing.setup,
    "overload": overload.setup,
    "grpc_autonomy": grpc_autonomy.setup,
    "soak": soak.setup,
}


def run(names: list[str], duration_s: float, output: Path, console: Console) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        console.print(f"[bold]running {name}[/] ({duration_s:g} s per case)...")
        rows += BENCHMARKS[name](duration_s)
    report(rows, {name: SETUPS[name]() for name in names if name in SETUPS}, output, console)
    return rows


def report(rows: list[Row], setups: dict[str, str], output: Path, console: Console) -> None:
    """Print the rows as one table, then how each benchmark was run; write both as JSON to ``output``."""
    table = Table(title="strata bench")
    for column in ("benchmark", "case", "value", "unit", "target", "met"):
        table.add_column(column)
    for row in rows:
        met = "" if row.met is None else ("[green]yes[/]" if row.met else "[red]no[/]")
        table.add_row(row.benchmark, row.case, f"{row.value:,.3f}", row.unit, row.target, met)
    console.print(table)
    for name, text in setups.items():
        console.print(f"[bold]{name}[/]: {text}")
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "placement": placement(),
        "setup": setups,
        "rows": [row.as_dict() for row in rows],
    }
    output.write_text(json.dumps(document, indent=2))
    console.print(f"wrote {output}")
