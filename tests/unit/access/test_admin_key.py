"""The bootstrap admin key reaches its owner only: a 0600 file or the terminal, never stdout or a log;
and create_app refuses an open gateway on a public address, as `strata serve` does."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from strata.access import AccessControl
from strata.access.admin_key import admin_key_handover, write_key_file
from strata.errors import SpecError
from strata.gateway.app import create_app
from strata.spec import AppSpec
from strata.store import Database


def _spec(tmp_path: Path, **gateway: object) -> AppSpec:
    return AppSpec.model_validate(
        {
            "models": [{"name": "m", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
            "deployments": [{"name": "m", "model": "m"}],
            "routes": [{"name": "m", "deployment": "m"}],
            "store": {"database_url": f"sqlite:///{tmp_path / 'db'}"},
            "gateway": gateway,
        }
    )


async def test_a_generated_admin_key_goes_to_a_0600_file_and_never_to_stdout_or_a_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATA_ADMIN_KEY", raising=False)
    key_file = tmp_path / "secrets" / "admin-key"
    caplog.set_level(logging.DEBUG)
    gateway = create_app(_spec(tmp_path), admin_key_file=key_file)
    async with gateway.lifespan():
        key = key_file.read_text().strip()
        principal = await gateway.state["access"].authenticate(f"Bearer {key}")
    assert principal.has_scope("admin")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    out, err = capfd.readouterr()
    assert key not in out + err + caplog.text
    assert str(key_file) in caplog.text  # the log says where it went


async def test_without_a_terminal_or_file_no_key_is_made_and_the_log_says_how_to_get_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATA_ADMIN_KEY", raising=False)
    assert admin_key_handover(None, terminal=tmp_path / "no-terminal" / "tty") is None
    database = Database(f"sqlite:///{tmp_path / 'db'}")
    await database.migrate()
    access = AccessControl(_spec(tmp_path), database)
    await access.start(None)
    try:
        assert not await access.keys.has_admin()
        assert "STRATA_ADMIN_KEY" in caplog.text
        assert "--admin-key-file" in caplog.text
    finally:
        await access.stop()
        await database.close()


def test_a_key_file_that_existed_with_a_wider_mode_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("old")
    path.chmod(0o644)
    write_key_file(path, "sk-new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "sk-new\n"


def test_create_app_refuses_an_open_gateway_on_a_public_address(tmp_path: Path) -> None:
    spec = _spec(tmp_path, host="0.0.0.0").model_copy(update={"access": _spec(tmp_path).access.model_copy(
        update={"enabled": False})})  # fmt: skip
    with pytest.raises(SpecError, match=r"gateway\.host"):
        create_app(spec)
    create_app(spec.model_copy(update={"gateway": spec.gateway.model_copy(update={"host": "127.0.0.1"})}))
