"""A private PostgreSQL server for outage tests: initdb + pg_ctl in a temp folder, on a free port,
stopped and started by the test (the shared server on 5432 is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from strata.testing.server import free_port


def available() -> bool:
    return shutil.which("pg_ctl") is not None and shutil.which("initdb") is not None


class PrivatePostgres:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.data = folder / "data"
        folder.chmod(0o777)  # the server runs as 'postgres' when the tests run as root
        self._user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*self._user, "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self._user, "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
                        str(self.data / "log"), "start"], check=True, capture_output=True)  # fmt: skip

    def stop(self) -> None:
        """Immediate shutdown: open connections are cut, as when the server or its host dies."""
        subprocess.run([*self._user, "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)  # fmt: skip


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started server, stopped on exit."""
    # Not pytest's tmp_path: its folders are private to root, and the server runs as 'postgres'.
    with tempfile.TemporaryDirectory(prefix="strata-pg-") as folder:
        server = PrivatePostgres(Path(folder))
        server.start()
        try:
            yield server
        finally:
            server.stop()
