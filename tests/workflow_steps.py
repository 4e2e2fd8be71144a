"""Custom pipeline steps the workflow tests use; importable by a server subprocess (tests/ on PYTHONPATH).

``apply_once`` is a side effect made exactly-once the honest way: every execution is logged first
(so re-executions are visible), then the effect is applied in one SQLite transaction that records
the step's idempotency key - a second execution with the same key finds it and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from strata.workflows import StepContext, StepError


def create_ledger(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE invocations (key TEXT, attempt INTEGER, pid INTEGER)")
        db.execute("CREATE TABLE effects (key TEXT PRIMARY KEY, amount INTEGER)")
        db.execute("CREATE TABLE compensations (key TEXT, amount INTEGER)")
        db.execute("CREATE TABLE balance (id INTEGER PRIMARY KEY, total INTEGER)")
        db.execute("INSERT INTO balance VALUES (1, 0)")


def _connect(context: StepContext) -> sqlite3.Connection:
    db = sqlite3.connect(context.options["ledger"], timeout=60, isolation_level=None)
    # No fsync per commit: what the tests kill is a process, and a killed process's committed writes
    # are already in the operating system's hands (only a power cut would lose them).
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _log(db: sqlite3.Connection, context: StepContext) -> None:
    db.execute("INSERT INTO invocations VALUES (?, ?, ?)", (context.idempotency_key, context.attempt, os.getpid()))


def apply_once(value: Any, context: StepContext) -> Any:
    """Adds the job's amount to the balance once per idempotency key, however often it runs."""
    amount = int(value["amount"])
    db = _connect(context)
    try:
        _log(db, context)
        time.sleep(context.options.get("sleep_s", 0.0))
        db.execute("BEGIN IMMEDIATE")
        applied = db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (context.idempotency_key, amount)).rowcount
        if applied:
            db.execute("UPDATE balance SET total = total + ? WHERE id = 1", (amount,))
        db.execute("COMMIT")
    finally:
        db.close()
    return {"amount": amount, "applied": bool(applied)}


def undo_apply(output: Any, context: StepContext) -> None:
    """Compensation of apply_once: takes the amount back out, once per key."""
    db = _connect(context)
    try:
        db.execute("BEGIN IMMEDIATE")
        if not db.execute("SELECT 1 FROM compensations WHERE key = ?", (context.idempotency_key,)).fetchone():
            db.execute("INSERT INTO compensations VALUES (?, ?)", (context.idempotency_key, output["amount"]))
            db.execute("UPDATE balance SET total = total - ? WHERE id = 1", (output["amount"],))
        db.execute("COMMIT")
    finally:
        db.close()


def square(value: Any, context: StepContext) -> Any:
    """A pure step that logs each execution (to count re-runs)."""
    db = _connect(context)
    try:
        _log(db, context)
    finally:
        db.close()
    return {"amount": value["amount"], "square": value["amount"] ** 2}


async def flaky(value: Any, context: StepContext) -> Any:
    """Fails its first ``failures`` attempts, then succeeds."""
    if context.attempt <= context.options.get("failures", 2):
        raise RuntimeError(f"flaky failure on attempt {context.attempt}")
    return {"value": value, "attempt": context.attempt}


async def always_fails(value: Any, context: StepContext) -> Any:
    raise RuntimeError("this step never works")


async def refuses(value: Any, context: StepContext) -> Any:
    raise StepError("refused for good", retryable=False)


async def interval(value: Any, context: StepContext) -> Any:
    """Records when it ran, in which process (for the two-worker test), and sleeps a little."""
    started = time.time()
    await asyncio.sleep(context.options.get("sleep_s", 0.02))
    record = {"key": context.idempotency_key, "pid": os.getpid(), "start": started, "end": time.time()}
    await asyncio.to_thread(_append, Path(context.options["log"]), json.dumps(record) + "\n")
    return value


def _append(path: Path, line: str) -> None:
    with path.open("a") as log:  # one small append: atomic between the worker processes
        log.write(line)


async def noop(value: Any, context: StepContext) -> Any:
    return value
