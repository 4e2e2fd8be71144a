"""`strata data`: new keys parse as a key ring; purge and rekey run against a real SQLite database."""

import asyncio
from pathlib import Path

import yaml
from typer.testing import CliRunner

from strata.access import exchanges
from strata.access.audit import recent
from strata.access.exchanges import ExchangeEntry
from strata.access.keyring import parse_keys
from strata.cli.main import app
from strata.store import Database

runner = CliRunner()


def _spec(tmp_path: Path) -> Path:
    spec = {
        "name": "data",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo"}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "protected_data": {"policies": [{"tenant": "acme", "store_prompts": "full", "retention_days": 1}]},
    }
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_new_key_purge_and_rekey(tmp_path: Path) -> None:
    old, new = (runner.invoke(app, ["data", "new-key", name]).output.strip() for name in ("old", "new"))
    assert parse_keys(f"{new},{old}", "test").ids == ["new", "old"]
    url = f"sqlite:///{tmp_path / 'strata.db'}"

    async def seed() -> None:
        database = Database(url)
        await database.migrate()
        entry = ExchangeEntry(0.0, "acme", None, "POST /x", "echo", 200, None, None, 1, 1, "p", "o")  # 1970: past
        recent_entry = ExchangeEntry(4e9, "acme", None, "POST /x", "echo", 200, "f" * 64, None, 1, 1, "p", "o")
        await exchanges.write(database, parse_keys(old, "test"), [entry, recent_entry])
        await database.close()

    asyncio.run(seed())
    spec, database = str(_spec(tmp_path)), ["--database-url", url]
    purged = runner.invoke(app, ["data", "purge", spec, *database])
    assert purged.exit_code == 0, purged.output
    assert "acme: 1 row(s) older than" in purged.output
    refused = runner.invoke(app, ["data", "rekey", spec, *database], env={"STRATA_DATA_KEYS": "bad"})
    assert refused.exit_code == 2
    assert "STRATA_DATA_KEYS: entry 1" in refused.output
    moved = runner.invoke(app, ["data", "rekey", spec, *database], env={"STRATA_DATA_KEYS": f"{new},{old}"})
    assert moved.exit_code == 0, moved.output
    assert "1 stored exchange(s) now sealed with key 'new'" in moved.output

    async def trail() -> list[str]:
        database = Database(url)
        try:
            return [row["action"] for row in await recent(database)]
        finally:
            await database.close()

    assert asyncio.run(trail()) == ["data.rekey", "data.purge"]
