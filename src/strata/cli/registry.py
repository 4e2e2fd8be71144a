"""`strata registry push|list|show|promote|rollback`: versions of models, stored content-addressed.

``push``, ``list`` and ``show`` work straight on the metadata database and the artifact store (the ones
`strata serve` uses). ``promote`` and ``rollback`` do too, unless ``--url`` names a running server: then
they go through its admin API, and its deployments serving that stage reload at once.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from strata.access import audit
from strata.access.audit import AuditEvent
from strata.cli.rollout import KeyOption, _call
from strata.data.artifacts import ArtifactStore
from strata.errors import StrataError
from strata.registry.service import ModelRegistry
from strata.store import Database

app = typer.Typer(no_args_is_help=True, help="Model registry: push versions, list them, promote and roll back stages.")
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str, typer.Option(envvar="STRATA_DATABASE_URL", help="Metadata database URL (the one `strata serve` uses).")
]
ArtifactsOption = Annotated[
    str, typer.Option(envvar="STRATA_ARTIFACTS_URL", help="Artifact store URL (the one `strata serve` uses).")
]
ServerOption = Annotated[
    str | None,
    typer.Option("--url", envvar="STRATA_URL", help="A running server: go through its admin API (it reloads)."),
]
NameArgument = Annotated[str, typer.Argument(help="The registered model's name.")]
StageOption = Annotated[str, typer.Option(help="staging, production or archived.")]
DEFAULT_DATABASE = "sqlite:///.strata/strata.db"
DEFAULT_ARTIFACTS = ".strata/artifacts"


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _run(database_url: str, artifacts_url: str, work: Callable[[ModelRegistry], Awaitable[T]]) -> T:
    async def main() -> T:
        database = Database(database_url)

        async def sink(event: AuditEvent) -> None:
            await audit.append(database, [event])  # the same hash chain the gateways append to

        try:
            await database.migrate()
            return await work(ModelRegistry(database, ArtifactStore(artifacts_url), sink))
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(2) from None


def _metrics(pairs: list[str]) -> dict[str, float]:
    parsed = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            parsed[key] = float(value)
        except ValueError:
            errors.print(f"[bold red]error:[/] --metric: expected NAME=NUMBER, got {pair!r}")
            raise typer.Exit(2) from None
        if not key:
            errors.print(f"[bold red]error:[/] --metric: expected NAME=NUMBER, got {pair!r}")
            raise typer.Exit(2)
    return parsed


def _show_version(version: dict[str, Any]) -> None:
    console.print(f"[bold]{version['model']}[/] version [bold]{version['version']}[/]", highlight=False)
    for field in ("task", "framework", "signature", "bytes", "source_hash", "data_hash", "created_by"):
        console.print(f"  {field}: {version[field]}", highlight=False)
    console.print(f"  stages: {', '.join(version['stages']) or '-'}", highlight=False)
    console.print(f"  metrics: {version['metrics'] or '-'}", highlight=False)
    table = Table("file", "bytes", "sha256")
    for file in version["files"]:
        table.add_row(file["path"], str(file["bytes"]), file["sha256"][:16])
    console.print(table)


def _show_stage(stage: dict[str, Any]) -> None:
    previous = "-" if stage["previous"] is None else stage["previous"]
    console.print(
        f"{stage['model']}@{stage['stage']} -> version [bold]{stage['version']}[/] (previous: {previous})",
        highlight=False,
    )
    for reload in stage.get("reloaded", []):
        if reload["error"]:
            console.print(
                f"  {reload['deployment']}: reload failed, still serving {reload['previous']}: {reload['error']}"
            )
        else:
            console.print(f"  {reload['deployment']}: serving version {reload['version']}", highlight=False)


@app.command()
def push(
    name: NameArgument,
    path: Annotated[Path, typer.Argument(help="The model folder (every file in it is stored).")],
    task: Annotated[str, typer.Option(help="generate, embed or predict.")],
    framework: Annotated[str, typer.Option(help="What loads the files.")] = "transformers",
    metric: Annotated[list[str] | None, typer.Option(help="NAME=NUMBER, repeatable (e.g. recall=0.91).")] = None,
    source_hash: Annotated[str | None, typer.Option(help="The training code's revision (e.g. a git SHA).")] = None,
    data_hash: Annotated[str | None, typer.Option(help="A digest of the training data.")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Store a folder as the model's next version (files already stored are not written again)."""
    metrics = _metrics(metric or [])
    version = _run(
        database_url,
        artifacts_url,
        lambda registry: registry.push(
            name,
            path,
            task=task,
            framework=framework,
            metrics=metrics,
            source_hash=source_hash,
            data_hash=data_hash,
            actor=_actor(),
        ),
    )
    console.print(
        f"pushed [bold]{name}[/] version [bold]{version['version']}[/]: {len(version['files'])} files, "
        f"{version['bytes']} bytes, signature {version['signature']}",
        highlight=False,
    )


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="A model: list its versions.")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """List registered models, or one model's versions."""
    if name is None:
        models = _run(database_url, artifacts_url, lambda registry: registry.list_models())
        table = Table("model", "versions", "latest", "stages")
        for model in models:
            stages = ", ".join(f"{stage}={version}" for stage, version in sorted(model["stages"].items()))
            table.add_row(model["name"], str(model["versions"]), str(model["latest"]), stages or "-")
        console.print(table)
        return
    versions = _run(database_url, artifacts_url, lambda registry: registry.list_versions(name))
    table = Table("version", "task", "stages", "bytes", "signature", "metrics")
    for version in versions:
        table.add_row(
            str(version["version"]),
            version["task"],
            ", ".join(version["stages"]) or "-",
            str(version["bytes"]),
            version["signature"][:16],
            ", ".join(f"{k}={v:g}" for k, v in version["metrics"].items()) or "-",
        )
    console.print(table)


@app.command()
def show(
    name: NameArgument,
    version: Annotated[int, typer.Argument(help="The version number.", min=1)],
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """One version: metadata, stages and its file manifest."""
    _show_version(_run(database_url, artifacts_url, lambda registry: registry.get(name, version)))


@app.command()
def promote(
    name: NameArgument,
    version: Annotated[int, typer.Argument(help="The version the stage names from now on.", min=1)],
    stage: StageOption = "production",
    url: ServerOption = None,
    api_key: KeyOption = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Point a stage at a version (through --url: the server's deployments of that stage reload)."""
    if url is not None:
        path = f"/registry/models/{name}/stages/{stage}/promote"
        _show_stage(_call("POST", url, api_key, path, {"version": version}))
        return
    _show_stage(
        _run(database_url, artifacts_url, lambda registry: registry.promote(name, version, stage, actor=_actor()))
    )


@app.command()
def rollback(
    name: NameArgument,
    stage: StageOption = "production",
    url: ServerOption = None,
    api_key: KeyOption = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Return a stage to the version it named before its last promotion."""
    if url is not None:
        _show_stage(_call("POST", url, api_key, f"/registry/models/{name}/stages/{stage}/rollback"))
        return
    _show_stage(_run(database_url, artifacts_url, lambda registry: registry.rollback(name, stage, actor=_actor())))
