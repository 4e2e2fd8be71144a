"""A child process that runs database work for its parent, at a lower CPU priority.

The database thread (store.background) keeps database calls off the request loop but not off the
interpreter: its Python (building rows, SQLAlchemy, the driver's glue) holds the GIL, and writing an
audit row per request at saturation held it long enough to double the gateway's p99. This process
has its own interpreter, and it lowers its own priority (``nice``), so where it shares a core with
the gateway the kernel runs it when the gateway has nothing to do.

Work crosses as a pickled ``(id, function, args)``; the function is module-level and takes the
child's ``Database`` first. Replies are ``(id, ok, value)``. The child exits when its stdin closes
(the parent stopped or died).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

T = TypeVar("T")
NICENESS = 10
_HEADER = struct.Struct("!I")


class WriterProcessDied(RuntimeError):
    """The writer process exited; the work it held is retried by its caller."""


def _send(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


class WriterProcess:
    def __init__(self, url: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "strata.store.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdin is not None
        _send(self._process.stdin, url)  # on the pipe, not the command line: ps would show its password
        self._ids = itertools.count()
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="writer-process-replies", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    async def run(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await work(database, *args)`` in the child; raises what it raised (or WriterProcessDied)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        request = next(self._ids)
        with self._lock:
            if not self.alive:
                raise WriterProcessDied("the database writer process is not running")
            self._pending[request] = (loop, future)
            assert self._process.stdin is not None
            try:
                # The work is pickled apart from its id: a child that cannot unpickle it still answers.
                _send(self._process.stdin, (request, pickle.dumps((work, args), protocol=pickle.HIGHEST_PROTOCOL)))
            except (BrokenPipeError, OSError) as error:
                self._pending.pop(request, None)
                raise WriterProcessDied(f"the database writer process is gone: {error}") from None
        return await asyncio.shield(future)  # a caller that stops waiting does not stop the write

    def _read(self) -> None:
        assert self._process.stdout is not None
        while True:
            try:
                request, ok, value = _receive(self._process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            with self._lock:
                loop, future = self._pending.pop(request)
            loop.call_soon_threadsafe(_settle, future, ok, value)
        with self._lock:  # the child is gone: nothing it held will be answered
            pending, self._pending = self._pending, {}
        for loop, future in pending.values():
            with contextlib.suppress(RuntimeError):  # a loop already closed has nobody waiting
                loop.call_soon_threadsafe(_settle, future, False, WriterProcessDied("the writer process exited"))

    def close(self) -> None:
        """Finish what was sent, then stop the child (closing its stdin ends it)."""
        with self._lock:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def _serve() -> None:
    from strata.store.database import Database  # the child imports only the store, not the app

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    database = Database(_receive(requests), pool_size=1)
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                request, payload = await loop.run_in_executor(None, _receive, requests)
            except EOFError:
                return
            try:
                work, args = pickle.loads(payload)
                reply = (request, True, await work(database, *args))
            except Exception as error:  # the boundary: the parent gets the error and decides
                reply = (request, False, _picklable(error))
            _send(replies, reply)
    finally:
        await database.close()


def _picklable(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    asyncio.run(_serve())
