"""PostgreSQL stopped: keys this gateway already knew keep working from its cache, an unknown one is
refused from memory, a key that needs a lookup gets 503 + Retry-After (never a 500), and lookups
work again by themselves when the server returns. A private PostgreSQL (initdb + pg_ctl in a temp
folder, a free port) is started and stopped here; the shared server is never touched."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.access.authenticator import Authenticator
from strata.access.keystore import KeyStore
from strata.errors import DependencyUnavailable, Unauthenticated
from strata.store import Database
from strata.testing import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("pg_ctl") is None or shutil.which("initdb") is None, reason="needs PostgreSQL"),
]


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
        subprocess.run([*self._user, "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)  # fmt: skip


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    # Not tmp_path: pytest's folders are private to root, and the server runs as 'postgres'.
    with tempfile.TemporaryDirectory(prefix="strata-pg-") as folder:
        server = PrivatePostgres(Path(folder))
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def test_a_stopped_database_degrades_to_the_cache_and_503_and_recovers(postgres: PrivatePostgres) -> None:
    database = Database(postgres.url)
    await database.migrate()
    keys = KeyStore(database)
    _, known = await keys.create("acme", ["infer"])
    auth = Authenticator(keys, cache_ttl_s=0.0, poll_interval_s=0.05)  # every request would re-read its key
    await auth.start()
    try:
        assert (await auth.authenticate(f"Bearer {known}")).tenant == "acme"
        _, later = await keys.create("acme", ["infer"])
        await _until_known(auth, later)  # in the known set, not yet looked up
        assert (await auth.authenticate(f"Bearer {known}")).tenant == "acme"  # cached (stale at once: ttl 0)
        postgres.stop()
        started = time.monotonic()
        assert (await auth.authenticate(f"Bearer {known}")).tenant == "acme"  # from the cache
        with pytest.raises(Unauthenticated):
            await auth.authenticate("Bearer sk-strata-000000000000.not-a-key")  # refused from memory
        with pytest.raises(DependencyUnavailable) as refused:
            await auth.authenticate(f"Bearer {later}")  # needs a lookup the database cannot answer
        assert refused.value.status == 503
        assert time.monotonic() - started < 5
        postgres.start()
        deadline = time.monotonic() + 15
        while True:  # back by itself: the pool drops dead connections and reconnects
            try:
                assert (await auth.authenticate(f"Bearer {later}")).tenant == "acme"
                break
            except DependencyUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        await auth.stop()
        await database.close()


async def _until_known(auth: Authenticator, key: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            await auth.authenticate(f"Bearer {key}")
            auth._cache.clear()  # known to the set; its lookup must happen later, with the database down
            return
        except Unauthenticated:
            assert time.monotonic() < deadline
