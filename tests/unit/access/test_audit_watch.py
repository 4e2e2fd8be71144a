"""The audit watch: walks the chain when started and on demand, keeps the verdict /metrics exports,
sees what the recorder still buffers, counts walks that could not run, and between full walks checks
only the rows added since the last sound one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from strata.access.audit import AuditEvent
from strata.access.audit_watch import AuditWatch
from strata.access.recorder import Recorder
from strata.access.tables import AuditRecord
from strata.store import Database


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true after {timeout_s} s")


def _event(n: int) -> AuditEvent:
    return AuditEvent("inference", f"POST /v1/x/{n}", 200, "acme", "k1", {"n": n})


async def test_verify_flushes_walks_and_keeps_the_verdict(database: Database) -> None:
    recorder = Recorder(database)
    watch = AuditWatch(database, recorder)
    assert watch.last is None
    for n in range(4):
        recorder.audit(_event(n))  # buffered, not written: the walk must flush them first
    checked = await watch.verify()
    assert checked.verdict.ok, checked.verdict.problems
    assert checked.verdict.rows == 4
    assert watch.last is checked
    async with database.session() as session:
        await session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(status=500))
    broken = await watch.verify()
    assert not broken.verdict.ok
    assert broken.at >= checked.at
    assert watch.last is broken


async def test_the_background_walk_runs_at_start(database: Database) -> None:
    watch = AuditWatch(database, Recorder(database), interval_s=0.05)
    async with watch.running():
        await _until(lambda: watch.last is not None)
    assert watch.last is not None
    assert watch.last.verdict.ok
    assert watch.failures == 0


async def test_a_walk_that_cannot_run_is_counted_and_retried(tmp_path: Path) -> None:
    unreadable = Database(f"sqlite:///{tmp_path}/never-migrated.db")  # no audit tables: every walk fails
    watch = AuditWatch(unreadable, Recorder(unreadable), interval_s=0.02)
    try:
        async with watch.running():
            await _until(lambda: watch.failures >= 2)
    finally:
        await unreadable.close()
    assert watch.last is None  # nothing known: /metrics exports no verdict rather than a false one


async def test_a_scheduled_walk_checks_only_the_rows_added_since_the_last_sound_one(database: Database) -> None:
    recorder = Recorder(database)
    watch = AuditWatch(database, recorder)
    for n in range(6):
        recorder.audit(_event(n))
    first = await watch.verify(full=False)  # nothing sound yet: the whole chain
    assert first.verdict.ok
    assert first.verdict.rows == 6
    for n in range(6, 9):
        recorder.audit(_event(n))
    later = await watch.verify(full=False, pause=0.5)
    assert later.verdict.ok, later.verdict.problems
    assert later.verdict.rows == 3  # the three new rows, not the chain again
    assert later.verdict.end.seq == 9
    full = await watch.verify()
    assert full.verdict.ok
    assert full.verdict.rows == 9


@pytest.mark.parametrize("tamper", ["edit_the_last_sound_row", "delete_the_last_sound_row"])
async def test_a_walk_from_the_last_sound_row_sees_that_row_tampered(database: Database, tamper: str) -> None:
    recorder = Recorder(database)
    watch = AuditWatch(database, recorder)
    for n in range(4):
        recorder.audit(_event(n))
    assert (await watch.verify()).verdict.ok
    async with database.session() as session:
        if tamper == "edit_the_last_sound_row":
            await session.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(hash="e" * 64))
        else:
            await session.execute(delete(AuditRecord).where(AuditRecord.seq == 4))
    broken = await watch.verify(full=False)
    assert not broken.verdict.ok
    assert any("row 4" in problem for problem in broken.verdict.problems), broken.verdict.problems
    again = await watch.verify(full=False)  # a broken chain is walked whole again, and stays broken
    assert not again.verdict.ok
    assert again.verdict.rows >= 3


async def test_the_background_walks_are_full_first_then_only_new_rows(database: Database) -> None:
    recorder = Recorder(database)
    for n in range(5):
        recorder.audit(_event(n))
    watch = AuditWatch(database, recorder, interval_s=0.02)
    async with watch.running():
        await _until(lambda: watch.last is not None and watch.last.verdict.rows == 5)
        recorder.audit(_event(5))
        await _until(lambda: watch.last is not None and watch.last.verdict.end.seq == 6)
        assert watch.last is not None
        assert watch.last.verdict.ok
        assert watch.last.verdict.rows <= 1  # the new row alone (or nothing new, once it is walked)
