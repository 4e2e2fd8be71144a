"""Protected data on a real database (SQLite and PostgreSQL): policies, sealing, rotation, rekey, purge."""

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from strata.access import exchanges
from strata.access.audit import recent, verify
from strata.access.control import data_keyring
from strata.access.exchanges import DataPolicies, ExchangeEntry, StoredExchange
from strata.access.keyring import DataKeyError, KeyRing, SealedDataError, keyring_from_env, parse_keys
from strata.access.recorder import Recorder
from strata.access.retention import purge, rekey
from strata.spec.protected import ProtectedDataSpec
from strata.store import Database

SECRET = "the launch code is 0000-swordfish"


def _key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def _entry(tenant: str, *, prompt: str | None = SECRET, at: float | None = None, sha: str = "ab" * 32) -> ExchangeEntry:
    output = None if prompt is None else f"echo: {prompt}"
    return ExchangeEntry(
        at if at is not None else datetime.now(UTC).timestamp(), tenant, "key1", "POST /v1/chat/completions",
        "chat@v1", 200, sha, "cd" * 32, 5, 7, prompt, output,
    )  # fmt: skip


def _policies(**levels: tuple[str, float | None]) -> DataPolicies:
    policies = [{"tenant": t, "store_prompts": level, "retention_days": days} for t, (level, days) in levels.items()]
    return DataPolicies(ProtectedDataSpec.model_validate({"policies": policies}))


async def _rows(database: Database) -> list[StoredExchange]:
    async with database.session() as session:
        return list((await session.scalars(select(StoredExchange).order_by(StoredExchange.id))).all())


async def test_levels_come_from_the_tenant_then_the_default() -> None:
    policies = _policies(acme=("full", 30), quiet=("none", None), **{"*": ("metadata", 7)})
    assert [policies.level(t) for t in ("acme", "quiet", "other")] == ["full", "none", "metadata"]
    assert DataPolicies(ProtectedDataSpec()).level("acme") == "none"
    assert not DataPolicies(ProtectedDataSpec()).active


async def test_content_is_sealed_and_nothing_stored_without_a_policy(database: Database) -> None:
    ring = parse_keys(_key("k1"), "STRATA_DATA_KEYS")
    recorder = Recorder(database, ring=ring)
    recorder.keep(_entry("acme"))
    recorder.keep(_entry("meta", prompt=None))
    await recorder.flush()
    rows = await _rows(database)
    assert [(r.tenant, r.key_id, r.sealed is not None) for r in rows] == [("acme", "k1", True), ("meta", None, False)]
    # What the database holds: no plaintext in any column, raw bytes included (read with plain SQL).
    async with database.connect() as connection:
        raw = (await connection.execute(text("SELECT * FROM protected_exchanges"))).all()
    dumped = repr(raw).encode() + b"".join(bytes(v) for row in raw for v in row if isinstance(v, bytes | memoryview))
    assert b"swordfish" not in dumped
    assert b"launch code" not in dumped
    opened = await exchanges.read(database, ring, rows[0].id)
    assert opened is not None
    assert opened["prompt"] == SECRET
    assert opened["output"] == f"echo: {SECRET}"
    metadata_only = await exchanges.read(database, ring, rows[1].id)
    assert metadata_only is not None
    assert metadata_only["prompt"] is None
    assert metadata_only["tokens_out"] == 7
    assert await exchanges.read(database, ring, 999_999) is None


async def test_a_policy_of_none_keeps_nothing_through_the_gateway_path(database: Database) -> None:
    """The gateway asks the policy per request; 'none' tenants never reach the recorder's buffer."""
    policies = _policies(acme=("full", None), quiet=("none", None))
    recorder = Recorder(database, ring=parse_keys(_key("k1"), "STRATA_DATA_KEYS"))
    for tenant in ("acme", "quiet", "unlisted"):
        if policies.level(tenant) != "none":
            recorder.keep(_entry(tenant))
    await recorder.flush()
    assert [r.tenant for r in await _rows(database)] == ["acme"]


async def test_a_ciphertext_moved_to_another_row_does_not_open(database: Database) -> None:
    ring = parse_keys(_key("k1"), "STRATA_DATA_KEYS")
    await exchanges.write(database, ring, [_entry("acme"), _entry("other", prompt="hello")])
    first, second = await _rows(database)
    async with database.connect() as connection:
        moved = update(exchanges.TABLE).where(exchanges.TABLE.c.id == second.id).values(sealed=first.sealed)
        await connection.execute(moved)
    with pytest.raises(SealedDataError, match="altered or moved"):
        await exchanges.read(database, ring, second.id)


async def test_rotation_keeps_old_rows_readable_and_rekey_moves_them(database: Database) -> None:
    old_key, new_key = _key("k1"), _key("k2")
    await exchanges.write(database, parse_keys(old_key, "STRATA_DATA_KEYS"), [_entry("acme", sha=f"{i:064x}")
                                                                              for i in range(7)])  # fmt: skip
    rotated = parse_keys(f"{new_key},{old_key}", "STRATA_DATA_KEYS")  # the new key first: active
    await exchanges.write(database, rotated, [_entry("acme", prompt="after rotation")])
    rows = await _rows(database)
    assert [r.key_id for r in rows] == ["k1"] * 7 + ["k2"]
    for row in rows:  # old rows still open with the rotated ring
        opened = await exchanges.read(database, rotated, row.id)
        assert opened is not None
        assert opened["prompt"] in (SECRET, "after rotation")
    seen: list[tuple[int, int]] = []
    assert await rekey(database, rotated, batch_rows=3, progress=lambda done, total: seen.append((done, total))) == 7
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert {r.key_id for r in await _rows(database)} == {"k2"}
    only_new = parse_keys(new_key, "STRATA_DATA_KEYS")  # the old key can go now
    for row in await _rows(database):
        assert (await exchanges.read(database, only_new, row.id)) is not None
    assert await rekey(database, only_new) == 0  # nothing left: a rerun is a no-op
    events = [r for r in await recent(database) if r["action"] == "data.rekey"]
    assert [e["detail"]["rows"] for e in events] == [0, 7]
    with pytest.raises(SealedDataError, match="not in the key ring"):
        await exchanges.read(database, parse_keys(_key("k3"), "STRATA_DATA_KEYS"), rows[0].id)


async def test_purge_deletes_past_retention_and_audits_each_run(database: Database) -> None:
    now = datetime.now(UTC)
    day = 86_400.0
    ring = parse_keys(_key("k1"), "STRATA_DATA_KEYS")
    entries = [
        _entry("acme", at=now.timestamp() - 40 * day), _entry("acme", at=now.timestamp() - 10 * day),
        _entry("forever", at=now.timestamp() - 400 * day), _entry("other", at=now.timestamp() - 3 * day),
        _entry("other", at=now.timestamp() - 1 * day),
    ]  # fmt: skip
    await exchanges.write(database, ring, entries)
    policies = _policies(acme=("full", 30), forever=("full", None), **{"*": ("metadata", 2)})
    events = await purge(database, policies, now)
    kept = [(r.tenant, round((now - r.at.replace(tzinfo=UTC)).total_seconds() / day)) for r in await _rows(database)]
    assert kept == [("acme", 10), ("forever", 400), ("other", 1)]
    assert {e.detail["policy_tenant"]: e.detail["deleted"] for e in events} == {"acme": 1, "*": 1}
    trail = [r for r in await recent(database) if r["action"] == "data.purge"]
    assert {(r["tenant"], r["detail"]["deleted"]) for r in trail} == {("acme", 1), (None, 1)}
    acme = next(r for r in trail if r["tenant"] == "acme")
    assert acme["detail"]["cutoff"] == (now - timedelta(days=30)).isoformat()
    assert (await purge(database, policies, now))[0].detail["deleted"] == 0  # a second run finds nothing, audited
    assert (await verify(database)).ok  # the purge's rows joined the hash chain like any other


def test_key_config_errors_name_the_variable(tmp_path: Path) -> None:
    names = ("STRATA_DATA_KEYS", "STRATA_DATA_KEYS_FILE")
    short = f"k1:{base64.b64encode(b'x' * 10).decode()}"
    cases = {
        "k1": "entry 1 is not 'id:base64key'",
        "k1:not base64!": "key 'k1' is not valid base64",
        short: "key 'k1' is 10 bytes",
        f"{_key('k1')},{_key('k1')}": "key id 'k1' appears twice",
        " , ": "no keys",
    }
    for value, problem in cases.items():
        with pytest.raises(DataKeyError) as caught:
            keyring_from_env({"STRATA_DATA_KEYS": value}, *names)
        assert caught.value.message.startswith("STRATA_DATA_KEYS: ")
        assert problem in caught.value.message
        assert "x" * 10 not in caught.value.message  # never the key material
    with pytest.raises(DataKeyError, match="STRATA_DATA_KEYS_FILE: cannot read"):
        keyring_from_env({"STRATA_DATA_KEYS_FILE": str(tmp_path / "missing")}, *names)
    with pytest.raises(DataKeyError, match="both set"):
        keyring_from_env({"STRATA_DATA_KEYS": _key("k1"), "STRATA_DATA_KEYS_FILE": "x"}, *names)
    key_file = tmp_path / "keys"
    key_file.write_text(f"# active first\n{_key('k2')}\n{_key('k1')}\n")
    ring = keyring_from_env({"STRATA_DATA_KEYS_FILE": str(key_file)}, *names)
    assert isinstance(ring, KeyRing)
    assert ring.ids == ["k2", "k1"]
    assert keyring_from_env({}, *names) is None


def test_a_full_policy_without_keys_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATA_DATA_KEYS", raising=False)
    monkeypatch.delenv("STRATA_DATA_KEYS_FILE", raising=False)
    spec = ProtectedDataSpec.model_validate({"policies": [{"tenant": "acme", "store_prompts": "full"}]})
    with pytest.raises(DataKeyError, match=r"^STRATA_DATA_KEYS \(or STRATA_DATA_KEYS_FILE\) is not set.*acme"):
        data_keyring(spec)
    assert data_keyring(ProtectedDataSpec.model_validate({"policies": [{"tenant": "a", "store_prompts": "metadata"}]}))\
        is None  # fmt: skip
