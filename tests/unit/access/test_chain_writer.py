"""The audit writer process: appends the chain in order from its own process, survives being killed,
keeps a batch it could not write with the recorder, and exits when the gateway closes it."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from strata.access.audit import AuditEvent, verify
from strata.access.chain_writer import AuditWriterGone, ProcessChainWriter, ThreadChainWriter, chain_writer_for
from strata.access.recorder import Recorder
from strata.access.usage import totals
from strata.store import Database


def _events(count: int, start: int = 0) -> list[AuditEvent]:
    numbers = range(start, start + count)
    return [AuditEvent("inference", f"POST /v1/x/{n}", 200, "acme", "k1", {"n": n}) for n in numbers]


def _url(database: Database) -> str:
    return database.url.render_as_string(hide_password=False)


async def test_batches_are_appended_in_order_by_another_process(database: Database) -> None:
    writer = ProcessChainWriter(_url(database))
    try:
        for start in range(0, 300, 100):
            await writer.append(_events(100, start))
        assert writer.pid is not None
        assert writer.pid != os.getpid()
    finally:
        await writer.close()
    verdict = await verify(database)
    assert verdict.ok, verdict.problems
    assert verdict.rows == 300
    assert writer.pid is None  # closed: the child exited
    assert writer.starts == 1


async def test_a_killed_writer_is_started_again_and_the_batch_is_not_lost(database: Database) -> None:
    writer = ProcessChainWriter(_url(database))
    recorder = Recorder(database, chain=writer)
    try:
        for event in _events(5):
            recorder.audit(event)
        await recorder.flush()
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        for event in _events(5, 5):
            recorder.audit(event)
        try:
            await recorder.flush()  # a new child at once if the death was already seen, else:
        except AuditWriterGone:  # the child died under this batch: it stays buffered
            await recorder.flush()  # and a new child writes it
        assert writer.starts == 2
    finally:
        await recorder.stop()
    verdict = await verify(database)
    assert verdict.ok, verdict.problems
    assert verdict.rows == 10


async def test_a_batch_the_child_cannot_write_stays_with_the_recorder(tmp_path: Path) -> None:
    unmigrated = Database(f"sqlite:///{tmp_path}/later.db")  # no tables yet: every append fails in the child
    writer = ProcessChainWriter(_url(unmigrated))
    recorder = Recorder(unmigrated, chain=writer)
    try:
        for event in _events(3):
            recorder.audit(event)
        with pytest.raises(AuditWriterGone, match="could not append"):
            await recorder.flush()
        assert writer.starts == 1  # the child answered and lives on
        await unmigrated.migrate()
        await recorder.flush()
        verdict = await verify(unmigrated)
        assert verdict.ok, verdict.problems
        assert verdict.rows == 3
    finally:
        await recorder.stop()
        await unmigrated.close()


async def test_an_in_memory_database_keeps_its_chain_on_the_thread() -> None:
    memory = Database("sqlite:///:memory:")
    try:
        assert isinstance(chain_writer_for(memory, "process"), ThreadChainWriter)
    finally:
        await memory.close()


async def test_usage_written_before_a_failed_append_is_not_written_again(database: Database) -> None:
    writer = ProcessChainWriter(_url(database))
    recorder = Recorder(database, chain=writer)
    try:
        recorder.usage("acme", "k1", "m", 0.0, (10, 5, 0.1, 0.01))
        recorder.audit(_events(1)[0])
        async with database.session() as session:  # the chain's head is gone: the child cannot append
            await session.execute(text("DROP TABLE access_audit_head"))
        with pytest.raises(AuditWriterGone, match="could not append"):
            await recorder.flush()  # usage written, the audit append failed
        recorder.usage("acme", "k1", "m", 0.0, (10, 5, 0.1, 0.01))  # arrives after the failed flush
        assert recorder._usage[("acme", "k1", "m", 0, None)][0] == 1  # the written request was not put back
        assert len(recorder._audit) == 1  # the audit entry was
        used = await totals(database, datetime(1970, 1, 1, tzinfo=UTC), tenant="acme")
        assert used[("acme", "*")].requests == 1
    finally:
        recorder.chain = ThreadChainWriter(database)  # nothing more to append: stop() writes usage only
        recorder._audit.clear()
        await recorder.stop()
        await writer.close()
