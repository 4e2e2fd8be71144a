"""The audit writer process (see chain_writer.py): batches in on stdin, acknowledgements out on stdout.

Each frame is a 4-byte big-endian length and a pickled ``(batch id, events)``; each answer is the
same framing around ``(batch id, None)`` once the batch is committed, or ``(batch id, error text)``
when it was not (the gateway keeps the batch and sends it again later). The process exits when its
stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from typing import BinaryIO

from strata.access import audit
from strata.access.chain_writer import DATABASE_URL_ENV, FRAME
from strata.store import Database

log = logging.getLogger("strata.access.audit_child")

# The lowest CPU priority: the writer runs in the time the request loop leaves. On one saturated core
# (the request-path benchmark at concurrency 16, 20 s) it still kept up, nothing dropped; at the
# default priority it took a fair share of the core and cut the gateway's requests/s by a quarter.
WRITER_NICE = 19


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(FRAME.size)
    if len(header) < FRAME.size:
        return None  # stdin closed: the gateway stopped (or died)
    size = FRAME.unpack(header)[0]
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return payload


def _answer(stream: BinaryIO, batch: int, error: str | None) -> None:
    payload = pickle.dumps((batch, error), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(payload)) + payload)
    stream.flush()


async def serve(url: str, requests: BinaryIO, answers: BinaryIO) -> None:
    database = Database(url)
    database.own_thread()  # this process is the database's only user: plain sqlite3 where it applies
    try:
        while (frame := _read_frame(requests)) is not None:  # blocking reads: nothing else runs here
            batch, events = pickle.loads(frame)
            try:
                await audit.append(database, events)
            except Exception as error:  # the batch was not written: say so, and carry on with the next
                log.warning("appending %d audit rows failed: %s", len(events), error)
                _answer(answers, batch, f"{type(error).__name__}: {error}")
            else:
                _answer(answers, batch, None)
    finally:
        await database.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(OSError):  # best effort: a platform without nice keeps the default
        os.nice(WRITER_NICE)
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        sys.exit(f"{DATABASE_URL_ENV} is not set: this process is started by the gateway (chain_writer.py)")
    # The answers get the pipe to themselves: descriptor 1 becomes stderr, so whatever else prints
    # (Python or a library's C code) cannot garble them.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    asyncio.run(serve(url, sys.stdin.buffer, answers))


if __name__ == "__main__":
    main()
