"""Who appends the audit chain for a gateway: its database thread, or a process of its own.

The recorder hands each batch of audit entries to one of these and awaits it; a failure leaves the
batch with the recorder, which retries it at the next flush.

Why a process (``access.audit_writer: process``, the default for a database in a file or on a
server): building, hashing and inserting a row costs about 14 µs of CPU. On the database thread that
CPU is taken under the interpreter's lock, in bursts of a flush's worth of rows, and the request
loop waits for the lock and for the scheduler. A process shares no lock with the loop; it runs at
the lowest CPU priority (audit_child.py), so on a shared core it uses the time requests leave, and
on a machine with more cores it takes none of the loop's. What the loop pays is pickling the batch,
about 0.25 µs an entry. Measured on one core with the request-path benchmark's no-op case
(``strata bench --only audit_writer``, benchmarks/measured/audit_writer-2026-12-07.json, 3 runs):
with the rows on the thread, c=1 p99 corrected for coordinated omission 3.4 ms and 4,136 req/s at
c=16; in the process, 2.4 ms and 5,664 req/s; without audit rows, 1.2 ms and 5,989 req/s. At the
default priority instead of the lowest, a single 20 s saturated run served a quarter fewer requests.

The child (``python -m strata.access.audit_child``) reads length-prefixed pickled batches on its
stdin, appends each with ``audit.append`` on its own connection, and answers each with an
acknowledgement on its stdout. It is started on the first batch and again after it dies; it exits
when its stdin closes (so also when the gateway is killed). A child that dies after committing a
batch but before acknowledging it gets that batch again: the trail then holds those rows twice,
each chained, rather than missing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import Protocol

from strata.access import audit
from strata.access.audit import AuditSource
from strata.store import Database

log = logging.getLogger(__name__)

FRAME = struct.Struct(">I")  # the length of the pickled payload that follows
DATABASE_URL_ENV = "STRATA_AUDIT_CHILD_DATABASE_URL"  # the URL travels in the environment, not argv (passwords)
STOP_TIMEOUT_S = 15.0


class ChainWriter(Protocol):
    async def append(self, events: Sequence[AuditSource]) -> None:
        """Append ``events`` to the chain, in order; raises when they were not written."""
        ...

    async def close(self) -> None: ...


class AuditWriterGone(RuntimeError):
    """The audit writer process exited or broke its protocol; the batch stays with the recorder."""


class ThreadChainWriter:
    """Appends on the database's own thread (``Database.off_loop``)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def append(self, events: Sequence[AuditSource]) -> None:
        await self.database.off_loop(lambda database: audit.append(database, events))

    async def close(self) -> None:
        return None


class ProcessChainWriter:
    """Appends in a child process of its own (see the module's doc)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.starts = 0  # children started (a restart after a crash counts)
        self._child: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()  # one batch in flight: acknowledgements come back in order

    async def append(self, events: Sequence[AuditSource]) -> None:
        if not events:
            return
        batch = next(self._ids)
        payload = pickle.dumps((batch, list(events)), protocol=pickle.HIGHEST_PROTOCOL)
        # Shielded: a flush cancelled at shutdown must not leave half a frame in the pipe.
        await asyncio.shield(self._exchange(batch, payload))

    async def _exchange(self, batch: int, payload: bytes) -> None:
        async with self._lock:
            child = await self._running()
            assert child.stdin is not None
            assert child.stdout is not None
            try:
                child.stdin.write(FRAME.pack(len(payload)) + payload)
                await child.stdin.drain()
                size = FRAME.unpack(await child.stdout.readexactly(FRAME.size))[0]
                answered, error = pickle.loads(await child.stdout.readexactly(size))
            except Exception as broken:  # gone, or an answer that does not parse: the pipe is out of step
                await self._discard(child)
                raise AuditWriterGone(f"the audit writer process stopped or garbled its answer ({broken!r})") from None
            if answered != batch:
                await self._discard(child)
                raise AuditWriterGone(f"the audit writer answered batch {answered} when {batch} was asked")
            if error is not None:
                raise AuditWriterGone(f"the audit writer could not append: {error}")

    async def _running(self) -> asyncio.subprocess.Process:
        child = self._child
        if child is not None and child.returncode is None:
            return child
        environment = {**os.environ, DATABASE_URL_ENV: self.database_url}
        self._child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "strata.access.audit_child",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=environment,
        )  # fmt: skip
        self.starts += 1
        if self.starts > 1:
            log.warning("the audit writer process was restarted (%d starts)", self.starts)
        return self._child

    async def _discard(self, child: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        self._child = None

    async def close(self) -> None:
        """Let the child finish and exit (its stdin closes); kill it if it does not."""
        async with self._lock:
            child, self._child = self._child, None
            if child is None or child.returncode is not None:
                return
            assert child.stdin is not None
            child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the audit writer process did not exit within %g s; killed", STOP_TIMEOUT_S)
                await self._discard(child)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None and self._child.returncode is None else None


def chain_writer_for(database: Database, kind: str) -> ChainWriter:
    """``kind`` is the spec's ``access.audit_writer``; an in-memory SQLite database has no second
    opener, so its chain is always appended on the thread."""
    if kind == "process" and not database.in_memory:
        return ProcessChainWriter(database.url.render_as_string(hide_password=False))
    return ThreadChainWriter(database)
