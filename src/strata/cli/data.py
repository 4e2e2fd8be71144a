"""`strata data`: the protected-data chores: a new data key, re-sealing old rows, purging now."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from strata.access.control import data_keyring
from strata.access.exchanges import DataPolicies
from strata.access.keyring import new_key
from strata.access.retention import purge, rekey
from strata.cli.specs import SPEC_ERROR_EXIT, AppArgument, load_app
from strata.errors import StrataError
from strata.store import Database

app = typer.Typer(no_args_is_help=True, help="Protected data: data keys, rekey, retention purge.")
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option(envvar="STRATA_DATABASE_URL", help="Metadata database URL (overrides the spec)."),
]


def _run(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = Database(database_url)
        try:
            await database.migrate()
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(main())


@app.command("new-key")
def new_key_command(
    key_id: Annotated[str, typer.Argument(help="The new key's id (letters, digits, . _ -).")],
) -> None:
    """Print a fresh 256-bit key as 'id:base64key': put it FIRST in STRATA_DATA_KEYS to make it active."""
    print(f"{key_id}:{new_key()}")


@app.command("rekey")
def rekey_command(
    spec_path: AppArgument = None,
    database_url: DatabaseOption = None,
    batch_rows: Annotated[int, typer.Option(min=1, max=100_000, help="Rows re-sealed per transaction.")] = 500,
) -> None:
    """Re-seal every stored exchange under the active data key (the first one). Resumable: a second run
    picks up what an interrupted one left."""
    spec = load_app(spec_path)
    try:
        ring = data_keyring(spec.protected_data)
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(SPEC_ERROR_EXIT) from None
    if ring is None:
        errors.print(f"[bold red]error:[/] {spec.protected_data.keys_env} is not set: no key to rekey to")
        raise typer.Exit(SPEC_ERROR_EXIT)
    columns = (TextColumn("re-sealing"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("rekey", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        moved = _run(
            database_url or spec.store.database_url,
            lambda database: rekey(database, ring, batch_rows=batch_rows, progress=advance),
        )
    console.print(f"[green]ok[/]: {moved} stored exchange(s) now sealed with key '{ring.active_id}'")


@app.command("purge")
def purge_command(spec_path: AppArgument = None, database_url: DatabaseOption = None) -> None:
    """Delete stored exchanges past their tenants' retention now (gateways also do it on a schedule)."""
    spec = load_app(spec_path)
    policies = DataPolicies(spec.protected_data)
    now = datetime.now(UTC)
    events = _run(database_url or spec.store.database_url, lambda database: purge(database, policies, now))
    for event in events:
        detail = event.detail
        console.print(f"{detail['policy_tenant']}: {detail['deleted']} row(s) older than {detail['cutoff']} deleted")
    if not events:
        console.print("no policy sets retention_days: nothing to purge")
