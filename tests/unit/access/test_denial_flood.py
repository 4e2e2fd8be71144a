"""A flood of random bad keys: no database read per request, bounded memory and a bounded number of
audit rows (denials are counted, one row per kind per flush), and real keys keep working."""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
from sqlalchemy import func, select

from strata.access import AccessControl
from strata.access.authenticator import Authenticator
from strata.access.keystore import KeyStore
from strata.access.recorder import ANY_ACTION, Recorder
from strata.access.tables import AuditRecord
from strata.errors import Unauthenticated
from strata.record import RequestRecord
from strata.spec import AppSpec
from strata.store import Database

FLOOD = 10_000
WAVE = 1000


SPEC = AppSpec.model_validate(
    {
        "models": [{"name": "m", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "m", "model": "m"}],
        "routes": [{"name": "m", "deployment": "m"}],
    }
)


async def _audit_rows(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


async def test_random_keys_cost_no_database_read_and_a_bounded_number_of_rows(database: Database) -> None:
    access = AccessControl(SPEC, database)
    await access.start(None)
    try:
        _, good = await access.keys.create("acme", ["infer"])
        access.authenticator.invalidate()
        assert (await access.authenticate(f"Bearer {good}")).tenant == "acme"
        rows_before, reads_before = await _audit_rows(database), access.authenticator.database_reads
        started = time.monotonic()
        for _ in range(FLOOD // WAVE):  # concurrent waves: each bad key waits for the next shared check
            await asyncio.gather(*(_bad_request(access) for _ in range(WAVE)))
        elapsed = time.monotonic() - started
        # At most one counter read per poll interval for all the misses together, never one per key.
        assert access.authenticator.database_reads - reads_before <= elapsed / access.authenticator.poll_interval_s + 2
        assert len(access.authenticator._cache) <= 1  # nothing cached for the random keys
        assert len(access.recorder._audit) == 0  # nothing queued per denial
        assert len(access.recorder._denials) <= 1
        await access.recorder.flush()
        # One row per flush (every interval_s): the flood's denials counted under their kind.
        assert await _audit_rows(database) - rows_before <= elapsed / access.recorder.interval_s + 2
        denials = await database.off_loop(_denials)
        assert {(action, status) for action, status, _ in denials} == {("POST /v1/chat/completions", 401)}
        assert sum(count for _, _, count in denials) == FLOOD
        assert (await access.authenticate(f"Bearer {good}")).tenant == "acme"  # real keys unaffected
    finally:
        await access.stop()


async def _bad_request(access: AccessControl) -> None:
    record = RequestRecord("POST", "/v1/chat/completions")
    try:
        await access.authenticate(f"Bearer sk-strata-{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}")
    except Unauthenticated as error:
        access.deny(record, error)
    else:
        raise AssertionError("a random key was accepted")


async def _denials(database: Database) -> list[tuple[str, int, int]]:
    async with database.session() as session:
        rows = (await session.scalars(select(AuditRecord).where(AuditRecord.kind == "denial"))).all()
        return [(row.action, row.status, orjson.loads(row.detail)["count"]) for row in rows]


async def test_denial_kinds_are_bounded_too(database: Database) -> None:
    recorder = Recorder(database, max_denial_keys=4)
    for n in range(1000):  # a distinct path each: the kinds past the bound share one counter
        recorder.deny(f"GET /v1/models/m{n}", 401, "invalid_api_key", None, None)
    assert len(recorder._denials) == 5
    assert recorder._denials[(ANY_ACTION, 401, "invalid_api_key", None, None)][0] == 996
    await recorder.flush()
    assert await _audit_rows(database) == 5


async def test_a_key_created_on_another_gateway_works_at_once(database: Database) -> None:
    keys = KeyStore(database)
    here = Authenticator(keys, poll_interval_s=60)  # the poller will not help: the miss check must
    await here.start()
    try:
        _, secret = await KeyStore(database).create("acme", ["infer"])  # "another gateway"
        assert (await here.authenticate(f"Bearer {secret}")).tenant == "acme"
    finally:
        await here.stop()
