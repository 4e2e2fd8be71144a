"""`strata registry push|list|show|promote|rollback`: versions of models, stored content-addressed.

``push``, ``list`` and ``show`` work straight on the metadata database and the artifact store (the ones
`strata serve` uses). ``promote`` and ``rollback`` do too, unless ``--url`` names a running server: then
they go through its admin API: a promotion starts a canary on the routes serving that stage (``--wait``
follows it to its end), or with ``--no-canary`` the deployments reload at once; a rollback ends a running
canary or moves the stage back. ``status`` shows a server's latest canary promotion of a stage.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from strata.access import audit
from strata.access.audit import AuditEvent
from strata.cli.rollout import DEFAULT_URL, KeyOption, _call, rollout_options
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


def _show_canary(canary: dict[str, Any]) -> None:
    console.print(
        f"canary of {canary['model']}@{canary['stage']}: version [bold]{canary['version']}[/] vs "
        f"{canary['previous']}: [bold]{canary['phase']}[/]",
        highlight=False,
    )
    if canary["reason"]:
        console.print(f"  reason: {canary['reason']}", highlight=False)
    for route in canary["routes"]:
        rollout = route["rollout"]
        weight = "-" if rollout is None else f"{rollout['canary_weight']:g}%"
        console.print(f"  route {route['route']}: {route['canary']} at {weight}", highlight=False)


def _show_stage(stage: dict[str, Any]) -> None:
    previous = "-" if stage["previous"] is None else stage["previous"]
    console.print(
        f"{stage['model']}@{stage['stage']} -> version [bold]{stage['version']}[/] (previous: {previous})",
        highlight=False,
    )
    if stage.get("canary") is not None:
        _show_canary(stage["canary"])
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


def _follow(url: str, api_key: str | None, name: str, stage: str) -> None:
    """Poll a canary until it ends, printing each rollout event once; exit 1 unless it completed."""
    printed: dict[str, int] = {}
    while True:
        canary = _call("GET", url, api_key, f"/registry/models/{name}/stages/{stage}/canary")
        for route in canary["routes"]:
            events = [] if route["rollout"] is None else route["rollout"]["events"]
            for event in events[printed.get(route["route"], 0) :]:
                console.print(f"  {route['route']} +{event['after_s']:.1f} s  {event['what']}", highlight=False)
            printed[route["route"]] = len(events)
        if canary["phase"] not in ("loading", "running"):
            _show_canary(canary)
            if canary["phase"] != "completed":
                raise typer.Exit(1)
            return
        time.sleep(0.5)


@app.command()
def promote(
    name: NameArgument,
    version: Annotated[int, typer.Argument(help="The version the stage names from now on.", min=1)],
    stage: StageOption = "production",
    canary: Annotated[
        bool, typer.Option(help="Through --url: roll the version out as a canary (else: switch at once).")
    ] = True,
    steps: Annotated[str | None, typer.Option(help="Canary weights, e.g. 5,25,50,100 (default: the route's).")] = None,
    window_s: Annotated[float | None, typer.Option(help="Seconds each canary step is watched.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Canary requests needed to judge it.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the canary until it completes or rolls back.")] = False,
    url: ServerOption = None,
    api_key: KeyOption = None,
    database_url: DatabaseOption = DEFAULT_DATABASE,
    artifacts_url: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Promote a version: through --url, a canary on the server's routes serving the stage (the stage moves
    when it completes) or, with --no-canary, an immediate reload; without --url, the stage moves in the
    database only."""
    if url is not None:
        body = {"version": version, "canary": canary, **rollout_options(steps, window_s, min_requests)}
        reply = _call("POST", url, api_key, f"/registry/models/{name}/stages/{stage}/promote", body)
        _show_stage(reply)
        if wait and reply["canary"] is not None:
            _follow(url, api_key, name, stage)
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
    """Return a stage's traffic to its previous version: ends a running canary (through --url), else moves
    the stage back to the version it named before its last promotion."""
    if url is not None:
        _show_stage(_call("POST", url, api_key, f"/registry/models/{name}/stages/{stage}/rollback"))
        return
    _show_stage(_run(database_url, artifacts_url, lambda registry: registry.rollback(name, stage, actor=_actor())))


@app.command()
def status(
    name: NameArgument,
    stage: StageOption = "production",
    url: Annotated[str, typer.Option("--url", envvar="STRATA_URL", help="The Strata server.")] = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """The server's latest canary promotion of a stage: phase, weights per route, and why it ended."""
    _show_canary(_call("GET", url, api_key, f"/registry/models/{name}/stages/{stage}/canary"))
