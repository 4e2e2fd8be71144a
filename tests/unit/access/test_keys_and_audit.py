"""Keys and the audit chain on a real database: each test runs on SQLite and on PostgreSQL."""

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from strata.access.audit import AuditEvent, append, verify
from strata.access.authenticator import Authenticator
from strata.access.keystore import KeyStore
from strata.access.recorder import Recorder
from strata.access.secrets import KEY_PREFIX, hash_key
from strata.access.tables import ApiKey, AuditRecord
from strata.access.usage import prompt_totals, totals
from strata.errors import InvalidRequest, Unauthenticated
from strata.store import Database


async def test_a_key_is_stored_only_as_a_hash_and_shown_once(database: Database) -> None:
    keys = KeyStore(database)
    info, secret = await keys.create("acme", ["infer", "jobs"], models=["m1"])
    assert secret.startswith(KEY_PREFIX + info.key_id)
    async with database.session() as session:
        row = (await session.scalars(select(ApiKey))).one()
        stored = [str(getattr(row, column.name)) for column in ApiKey.__table__.columns]
    assert row.key_hash == hash_key(secret)
    assert not any(secret in value for value in stored)
    assert "key" not in info.as_dict()
    assert secret not in str(info.as_dict())
    assert info.as_dict()["prefix"] == secret[: len(KEY_PREFIX) + 12]


async def test_bad_key_fields_are_named(database: Database) -> None:
    keys = KeyStore(database)
    with pytest.raises(InvalidRequest) as caught:
        await keys.create("acme", ["infer", "root"])
    assert caught.value.param == "scopes"
    with pytest.raises(InvalidRequest) as caught:
        await keys.create("acme", ["infer"], models=[])
    assert caught.value.param == "models"


async def test_revocation_and_expiry_refuse_the_next_request(database: Database) -> None:
    keys = KeyStore(database)
    auth = Authenticator(keys, poll_interval_s=0.05)
    await auth.start()
    try:
        info, secret = await keys.create("acme", ["infer"])
        assert (await auth.authenticate(f"Bearer {secret}")).tenant == "acme"
        _, short = await keys.create("acme", ["infer"], expires_at=datetime.now(UTC) + timedelta(seconds=0.3))
        assert (await auth.authenticate(f"Bearer {short}")).tenant == "acme"
        await keys.revoke(info.key_id)
        auth.invalidate()  # what the admin API does in the revoking gateway
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {secret}")
        await asyncio.sleep(0.4)
        with pytest.raises(Unauthenticated):  # expiry is checked on every request, cached or not
            await auth.authenticate(f"Bearer {short}")
    finally:
        await auth.stop()


async def test_another_gateway_sees_a_revocation_through_the_version_poll(database: Database) -> None:
    other = Database(str(database.url.render_as_string(hide_password=False)))
    keys, remote_keys = KeyStore(database), KeyStore(other)
    auth = Authenticator(remote_keys, poll_interval_s=0.05)
    await auth.start()
    try:
        info, secret = await keys.create("acme", ["infer"])
        await auth.authenticate(f"Bearer {secret}")  # now cached in the "other gateway"
        await keys.revoke(info.key_id)
        for _ in range(100):  # waits for the poll; never a timed assertion
            try:
                await auth.authenticate(f"Bearer {secret}")
            except Unauthenticated:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the revoked key was still accepted after 2 s of polling")
    finally:
        await auth.stop()
        await other.close()


async def test_strict_revocation_refuses_the_next_request_on_another_gateway(database: Database) -> None:
    other = Database(str(database.url.render_as_string(hide_password=False)))
    keys = KeyStore(database)
    auth = Authenticator(KeyStore(other), poll_interval_s=3600, strict=True)  # the poll never runs in this test
    await auth.start()
    try:
        info, secret = await keys.create("acme", ["infer"])
        await auth.authenticate(f"Bearer {secret}")  # cached in the "other gateway"
        await keys.revoke(info.key_id)
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {secret}")
    finally:
        await auth.stop()
        await other.close()


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer sk-strata-nope"])
async def test_missing_or_malformed_credentials(database: Database, header: str | None) -> None:
    auth = Authenticator(KeyStore(database))
    with pytest.raises(Unauthenticated):
        await auth.authenticate(header)


async def test_bootstrap_uses_the_given_key_once(database: Database) -> None:
    keys = KeyStore(database)
    assert await keys.bootstrap("sk-strata-test-given") == "sk-strata-test-given"
    assert await keys.bootstrap("sk-strata-test-given") is None
    assert await keys.bootstrap(None) is None  # an admin key exists: nothing new is generated
    [admin] = await keys.list()
    assert admin.scopes == ["admin"]
    assert (await keys.find(hash_key("sk-strata-test-given"))) is not None


async def test_bootstrap_generates_a_key_when_none_is_given(database: Database) -> None:
    created = await KeyStore(database).bootstrap(None)
    assert created is not None
    assert created.startswith(KEY_PREFIX)


def _events(count: int, start: int = 0) -> list[AuditEvent]:
    return [AuditEvent("inference", f"POST /v1/x/{i}", 200, "acme", "k1", {"n": i}) for i in range(start, count)]


async def test_an_intact_chain_verifies(database: Database) -> None:
    await append(database, _events(5))
    await append(database, _events(8, 5))
    verdict = await verify(database)
    assert verdict.ok, verdict.problems
    assert verdict.rows == 8


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last", "edit_and_rehash"])
async def test_verify_catches_edited_and_deleted_rows(database: Database, tamper: str) -> None:
    await append(database, _events(6))
    async with database.session() as session:
        if tamper == "edit":
            await session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(status=500))
        elif tamper == "delete_middle":
            await session.execute(delete(AuditRecord).where(AuditRecord.seq == 3))
        elif tamper == "delete_last":
            await session.execute(delete(AuditRecord).where(AuditRecord.seq == 6))
        else:  # an editor who recomputes the row's own hash still breaks the next row's link
            await session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(hash="f" * 64))
    verdict = await verify(database)
    assert not verdict.ok
    assert verdict.problems


async def test_concurrent_writers_never_fork_the_chain(database: Database) -> None:
    other = Database(str(database.url.render_as_string(hide_password=False)))
    try:
        await asyncio.gather(*(append(db, _events(3)) for db in [database, other] * 5))
    finally:
        await other.close()
    verdict = await verify(database)
    assert verdict.ok, verdict.problems
    assert verdict.rows == 30
    async with database.connect() as connection:
        assert (await connection.execute(text("SELECT count(DISTINCT prev_hash) FROM access_audit"))).scalar() == 30


async def test_gateways_starting_together_create_one_admin_key(database: Database) -> None:
    others = [Database(str(database.url.render_as_string(hide_password=False))) for _ in range(3)]
    try:
        created = await asyncio.gather(*(KeyStore(db).bootstrap(None) for db in [database, *others]))
    finally:
        await asyncio.gather(*(db.close() for db in others))
    assert sum(key is not None for key in created) == 1
    assert len(await KeyStore(database).list()) == 1


async def test_stopping_the_recorder_writes_every_buffered_row(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600)  # never flushes on its own in this test
    recorder.start()
    now = datetime.now(UTC)
    for index in range(25):
        recorder.usage("acme", "k1", "m", now.timestamp(), (10, index, 0.01, 0.5))
        recorder.audit(AuditEvent("inference", "POST /v1/embeddings", 200, "acme", "k1", {"n": index}))
    await recorder.stop()
    [total] = (await totals(database, now - timedelta(seconds=120))).values()
    assert total.requests == 25
    assert total.tokens_out == sum(range(25))
    assert total.cost == pytest.approx(12.5)
    verdict = await verify(database)
    assert verdict.ok
    assert verdict.rows == 25


async def test_usage_is_one_row_per_tenant_key_model_and_minute(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600)
    minute = 60 * int(datetime.now(UTC).timestamp() // 60)
    for index in range(100):  # two keys, two minutes: four rows, however many requests
        recorder.usage("acme", f"k{index % 2}", "m", minute - 60 * (index // 50) + 1, (1, 2, 0.0, 0.0))
    await recorder.flush()
    async with database.session() as session:
        rows = (await session.execute(text("SELECT key_id, requests, tokens_in FROM access_usage"))).all()
    assert sorted(rows) == [("k0", 25, 25), ("k0", 25, 25), ("k1", 25, 25), ("k1", 25, 25)]
    [total] = (await totals(database, datetime.fromtimestamp(minute - 60, UTC))).values()
    assert (total.requests, total.tokens_in, total.tokens_out) == (100, 100, 200)


async def test_a_full_audit_buffer_counts_its_losses_and_the_trail_says_so(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600, max_audit_buffer=10)
    for index in range(15):
        recorder.audit(AuditEvent("inference", "POST /v1/embeddings", 200, "acme", "k1", {"n": index}))
    assert recorder.dropped_audit == 5
    await recorder.flush()
    verdict = await verify(database)
    assert verdict.ok
    assert verdict.rows == 11  # ten events and the overflow row
    async with database.session() as session:
        query = select(AuditRecord.detail).where(AuditRecord.action == "audit.overflow")
        [detail] = (await session.execute(query)).one()
    assert '"dropped":5' in detail


async def test_rows_that_fail_to_write_stay_buffered_and_are_written_later(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600)
    now = datetime.now(UTC).timestamp()
    recorder.usage("acme", "k1", "m", now, (1, 1, 0.0, 0.0))
    recorder.audit(AuditEvent("admin", "keys.create", 201, "acme", "k1"))
    async with database.session() as session:  # an audit head that cannot be locked: the write fails
        await session.execute(text("DROP TABLE access_audit_head"))
    # SQLite's audit batches go through a plain sqlite3 connection on the database thread (its error type)
    with pytest.raises((DBAPIError, sqlite3.Error), match="access_audit_head"):
        await recorder.flush()
    recorder.usage("acme", "k1", "m", now, (1, 1, 0.0, 0.0))  # arrives while the write is failing
    # The usage row went in before the audit append failed: only the new request waits (no double count).
    assert recorder._usage[("acme", "k1", "m", int(now // 60) * 60, None)][0] == 1
    used = await totals(database, datetime.fromtimestamp(now - 120, UTC), tenant="acme")
    assert used[("acme", "*")].requests == 1
    assert len(recorder._audit) == 1


async def test_a_batch_of_audit_entries_is_written_before_the_interval_and_usage_waits(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600, audit_batch_rows=5)
    recorder.start()
    try:
        recorder.usage("acme", "k1", "m", datetime.now(UTC).timestamp(), (1, 1, 0.0, 0.0))
        for index in range(5):
            recorder.audit(AuditEvent("inference", "POST /v1/embeddings", 200, "acme", "k1", {"n": index}))
        for _ in range(200):  # the writer is woken by the fifth entry; never a timed assertion
            if (await verify(database)).rows == 5:
                break
            await asyncio.sleep(0.05)
        assert (await verify(database)).rows == 5
        assert await totals(database, datetime.now(UTC) - timedelta(minutes=5)) == {}  # usage: next full flush
    finally:
        await recorder.stop()
    [total] = (await totals(database, datetime.now(UTC) - timedelta(minutes=5))).values()
    assert total.requests == 1


async def test_usage_is_summed_per_prompt_template_too(database: Database) -> None:
    recorder = Recorder(database, interval_s=3600)
    now = datetime.now(UTC)
    for prompt in ("support@1", "support@1", "support@2", None):
        recorder.usage("acme", "k1", "m", now.timestamp(), (10, 2, 0.0, 0.5), prompt)
    recorder.usage("globex", "k2", "m", now.timestamp(), (1, 1, 0.0, 0.0), "support@1")
    await recorder.flush()
    start = now - timedelta(minutes=1)
    by_prompt = await prompt_totals(database, start, tenant="acme")
    assert {key: (t.requests, t.tokens_in, t.cost) for key, t in by_prompt.items()} == {
        ("acme", "support@1"): (2, 20, 1.0), ("acme", "support@2"): (1, 10, 0.5)
    }  # fmt: skip
    assert (await totals(database, start, tenant="acme"))[("acme", "*")].requests == 4  # every request, once
    assert set(await prompt_totals(database, start, tenant=None)) == {
        ("acme", "support@1"), ("acme", "support@2"), ("globex", "support@1")
    }  # fmt: skip


async def test_a_walk_while_another_gateway_appends_sees_an_intact_chain(database: Database) -> None:
    await append(database, _events(50))
    other = Database(str(database.url.render_as_string(hide_password=False)))  # a second gateway

    async def keep_appending() -> None:
        for n in range(50, 90):
            await append(other, _events(n + 1, n))

    try:
        # One row per read: the walk yields between rows, and the other gateway's commits land in between.
        verdict, _ = await asyncio.gather(verify(database, batch=1), keep_appending())
    finally:
        await other.close()
    assert verdict.ok, verdict.problems
    assert verdict.rows >= 50
    after = await verify(database)
    assert after.ok, after.problems
    assert after.rows == 90


async def test_rows_added_past_the_head_are_reported(database: Database) -> None:
    await append(database, _events(3))
    async with database.session() as session:  # a row that links to the last one, written around the chain's head
        last = (await session.scalars(select(AuditRecord).where(AuditRecord.seq == 3))).one()
        session.add(
            AuditRecord(seq=4, at=last.at, kind="inference", tenant="acme", actor="k1", action="POST /v1/x/forged",
                        status=200, detail="{}", prev_hash=last.hash, hash="0" * 64)
        )  # fmt: skip
    verdict = await verify(database)
    assert not verdict.ok
    assert any("past the chain's head" in problem for problem in verdict.problems), verdict.problems
