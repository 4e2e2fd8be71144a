"""PostgreSQL stopped: keys this gateway already knew keep working from its cache, an unknown one is
refused from memory, a key that needs a lookup gets 503 + Retry-After (never a 500), and lookups
work again by themselves when the server returns. A private PostgreSQL (initdb + pg_ctl in a temp
folder, a free port) is started and stopped here; the shared server is never touched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from strata.access.authenticator import Authenticator
from strata.access.keystore import KeyStore
from strata.errors import DependencyUnavailable, Unauthenticated
from strata.store import Database
from strata.testing.private_postgres import PrivatePostgres, available, private_postgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="needs PostgreSQL (initdb, pg_ctl)"),
]


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


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
