"""The writer process: work runs in a child with its own interpreter; errors and deaths come back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.errors import InvalidRequest
from strata.store.writer_process import WriterProcess, WriterProcessDied
from strata.testing import child_work


async def test_work_runs_in_a_child_and_its_errors_come_back_as_themselves(tmp_path: Path) -> None:
    writer = WriterProcess(f"sqlite:///{tmp_path / 'db'}")
    try:
        pid, dialect, extra = await writer.run(child_work.pid_and_dialect, 7)
        assert (dialect, extra) == ("sqlite", 7)
        assert pid != os.getpid()
        with pytest.raises(InvalidRequest) as caught:
            await writer.run(child_work.fail)
        assert caught.value.param == "x"
        with pytest.raises(WriterProcessDied):  # a child that dies mid-work fails what it held
            await writer.run(child_work.die)
        assert not writer.alive
        with pytest.raises(WriterProcessDied):
            await writer.run(child_work.pid_and_dialect, 1)
    finally:
        writer.close()


async def _only_here(database: object) -> None:
    """Importable in the test process, not in the child (tests are not on its path)."""


async def test_work_the_child_cannot_import_is_an_error_not_a_dead_child(tmp_path: Path) -> None:
    writer = WriterProcess(f"sqlite:///{tmp_path / 'db'}")
    try:
        with pytest.raises(ModuleNotFoundError):
            await writer.run(_only_here)
        _, dialect, _ = await writer.run(child_work.pid_and_dialect, 2)
        assert dialect == "sqlite"
    finally:
        writer.close()
