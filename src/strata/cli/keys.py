"""`strata keys`: create, list and revoke API keys straight in the metadata database."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from strata.access.keystore import KeyStore
from strata.errors import StrataError
from strata.store import Database

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str, typer.Option(envvar="STRATA_DATABASE_URL", help="Metadata database URL (the one `strata serve` uses).")
]
DEFAULT_DATABASE = "sqlite:///.strata/strata.db"
_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _run(database_url: str, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def main() -> T:
        database = Database(database_url)
        try:
            await database.migrate()
            return await work(KeyStore(database))
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(2) from None


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _DURATION.match(value)
    if match is None:
        errors.print(f"[bold red]error:[/] --expires: '{value}' is not a duration like 30m, 12h or 90d")
        raise typer.Exit(2)
    return datetime.now(UTC) + timedelta(seconds=int(match[1]) * _SECONDS[match[2]])


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: infer, jobs, admin.")] = "infer",
    models: Annotated[str | None, typer.Option(help="Comma-separated model allow-list (default: all).")] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime: 30m, 12h, 90d (default: never).")] = None,
    name: Annotated[str | None, typer.Option(help="A label for listings.")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    expires_at = _expiry(expires)
    info, secret = _run(
        database_url,
        lambda keys: keys.create(tenant, _split(scopes) or [], models=_split(models), name=name, expires_at=expires_at),
    )
    console.print(f"created key [bold]{info.key_id}[/] for tenant '{info.tenant}' (scopes {', '.join(info.scopes)})")
    console.print("store it now, it is not shown again:")
    print(secret)


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """List keys (never the secrets)."""
    rows = _run(database_url, lambda keys: keys.list(tenant))
    table = Table()
    table.add_column("id", no_wrap=True, min_width=12)
    for column in ("tenant", "scopes", "models", "expires", "revoked"):
        table.add_column(column, overflow="fold")
    for key in rows:
        table.add_row(
            key.key_id,
            key.tenant,
            ",".join(key.scopes),
            "*" if key.models is None else ",".join(key.models),
            "-" if key.expires_at is None else key.expires_at.strftime("%Y-%m-%d %H:%M"),
            "-" if key.revoked_at is None else key.revoked_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `strata keys list`).")],
    database_url: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Revoke a key: every gateway refuses it within its revocation poll interval."""
    info = _run(database_url, lambda keys: keys.revoke(key_id))
    if info is None:
        errors.print(f"[bold red]error:[/] no key '{key_id}'")
        raise typer.Exit(1)
    console.print(f"revoked key {key_id} of tenant '{info.tenant}'")
