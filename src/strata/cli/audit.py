"""`strata audit verify`: walk the hash chain and report any edited or deleted row."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from strata.access import audit as audit_trail
from strata.store import Database

app = typer.Typer(no_args_is_help=True, help="Check the audit trail.")
console = Console()


@app.command()
def verify(
    database_url: Annotated[
        str, typer.Option(envvar="STRATA_DATABASE_URL", help="Metadata database URL (the one `strata serve` uses).")
    ] = "sqlite:///.strata/strata.db",
) -> None:
    """Exit 0 if every audit row is intact, 1 (naming the rows) if any was edited or deleted."""

    async def main() -> audit_trail.Verdict:
        database = Database(database_url)
        try:
            await database.migrate()
            return await audit_trail.verify(database)
        finally:
            await database.close()

    verdict = asyncio.run(main())
    if verdict.ok:
        console.print(f"[green]ok[/]: {verdict.rows} audit row(s), chain intact")
        return
    for problem in verdict.problems:
        console.print(f"[bold red]tampered:[/] {problem}", highlight=False)
    raise typer.Exit(1)
