"""The `strata` command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from transformers.utils import logging as transformers_logging

from strata.access.safety import check_bind
from strata.cli import audit as audit_cli
from strata.cli import autonomy as autonomy_cli
from strata.cli import cluster as cluster_cli
from strata.cli import data as data_cli
from strata.cli import deploy as deploy_cli
from strata.cli import export as export_cli
from strata.cli import keys as keys_cli
from strata.cli import prompts as prompts_cli
from strata.cli import registry as registry_cli
from strata.cli import worker as worker_cli
from strata.cli.progress import LoadProgress
from strata.cli.rollout import rollout_app
from strata.cli.specs import SPEC_ERROR_EXIT, AppArgument, load_app
from strata.errors import StrataError
from strata.gateway.app import create_app
from strata.gateway.http_protocol import guarded_protocol
from strata.gateway.tls import uvicorn_tls_options
from strata.models.paths import BUILTIN_PREFIX, resolve_model_path
from strata.observability.logs import configure_logging
from strata.spec import AppSpec
from strata.training.train_chat import DEFAULT_STEPS, train_chat_model

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Strata: a serving platform for generative AI.")
app.add_typer(rollout_app, name="rollout")
console = Console()
errors = Console(stderr=True)

DatabaseOption = Annotated[
    str | None, typer.Option(envvar="STRATA_DATABASE_URL", help="Metadata database URL (overrides the spec).")
]
RedisOption = Annotated[
    str | None, typer.Option(envvar="STRATA_REDIS_URL", help="Redis URL for shared state (overrides the spec).")
]
ArtifactsOption = Annotated[
    str | None, typer.Option(envvar="STRATA_ARTIFACTS_URL", help="Artifact store URL (overrides the spec).")
]

VectorsOption = Annotated[
    str | None,
    typer.Option(envvar="STRATA_VECTORS_URL", help="Vector index: a folder or postgresql://... (overrides the spec)."),
]


def _with_stores(
    spec: AppSpec,
    database_url: str | None,
    redis_url: str | None,
    artifacts_url: str | None,
    vectors_url: str | None = None,
) -> AppSpec:
    store = spec.store.model_copy(
        update={
            "database_url": database_url or spec.store.database_url,
            "redis_url": redis_url or spec.store.redis_url,
            "artifacts_url": artifacts_url or spec.store.artifacts_url,
            "vectors_url": vectors_url or spec.store.vectors_url,
        }
    )
    return spec.model_copy(update={"store": store})


@app.command()
def serve(
    spec_path: AppArgument = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides the spec).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides the spec).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    artifacts_url: ArtifactsOption = None,
    vectors_url: VectorsOption = None,
    runtime: Annotated[
        str | None,
        typer.Option(help="Where replicas run: local or ray (overrides the spec; see STRATA_RAY_ADDRESS)."),
    ] = None,
    admin_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="STRATA_ADMIN_KEY_FILE",
            help="Write a generated bootstrap admin key to this file (mode 0600) instead of the terminal.",
        ),
    ] = None,
) -> None:
    """Serve an app: OpenAI-compatible API, jobs and batches, /healthz, /readyz and /metrics."""
    spec = _with_stores(load_app(spec_path), database_url, redis_url, artifacts_url, vectors_url)
    if runtime is not None:
        if runtime not in ("local", "ray"):
            errors.print(f"[bold red]error:[/] --runtime: '{runtime}' is not one of local, ray", highlight=False)
            raise typer.Exit(SPEC_ERROR_EXIT)
        spec = spec.model_copy(update={"runtime": runtime})
    fixed = [d.name for d in spec.deployments if d.autoscaling is not None and spec.runtime == "local"]
    if fixed:  # not an error: the same spec is meant to run both ways
        console.print(
            f"[yellow]note:[/] autoscaling of {', '.join(fixed)} applies on the Ray runtime; "
            "the local runtime keeps their 'replicas' fixed",
            highlight=False,
        )
    gateway = spec.gateway.model_copy(
        update={"host": host or spec.gateway.host, "port": port if port is not None else spec.gateway.port}
    )
    spec = spec.model_copy(update={"gateway": gateway})
    try:
        check_bind(gateway.host, spec.access.enabled)
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(SPEC_ERROR_EXIT) from None
    configure_logging(spec.observability.logs, log_level)
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # Strata shows its own progress
    try:
        tls_options = uvicorn_tls_options(gateway.tls)
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(SPEC_ERROR_EXIT) from None
    url = f"{'https' if gateway.tls else 'http'}://{gateway.host}:{gateway.port}"
    total = sum(d.replicas for d in spec.deployments)
    progress = LoadProgress(console, total, f"Strata '{spec.name}' is ready on {url}/v1")
    console.print(f"Strata '{spec.name}': listening on {url}, loading {total} replica(s)...")
    try:
        asgi = create_app(spec, progress=progress, admin_key_file=admin_key_file)
    except StrataError as error:  # e.g. access.jwt names a secret variable that is not set
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(SPEC_ERROR_EXIT) from None
    sys.setswitchinterval(gateway.gil_switch_interval_ms / 1000)  # bounds the loop's wait for the GIL
    config = uvicorn.Config(
        asgi,
        host=gateway.host,
        port=gateway.port,
        loop="uvloop",
        # httptools, with deadlines for slow and hostile clients (gateway/http_protocol.py)
        http=guarded_protocol(
            header_timeout_s=gateway.header_timeout_s,
            body_timeout_s=gateway.body_timeout_s,
            send_timeout_s=gateway.send_timeout_s,
            max_header_bytes=gateway.max_header_bytes,
        ),
        timeout_keep_alive=gateway.keep_alive_s,
        limit_concurrency=gateway.max_connections,
        log_level=log_level,
        access_log=False,
        # Strata reads no client address; uvicorn's X-Forwarded-For rewriting would wrap every request.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        **tls_options,
    )
    uvicorn.Server(config).run()


@app.command()
def worker(
    spec_path: AppArgument = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker loops in this process.")] = 1,
    models: Annotated[
        bool | None,
        typer.Option("--models/--no-models", help="Load the app's models (default: if a pipeline generates)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "warning",
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    artifacts_url: ArtifactsOption = None,
    vectors_url: VectorsOption = None,
    metrics: Annotated[
        bool, typer.Option("--metrics/--no-metrics", help="Serve /metrics and /healthz for this worker.")
    ] = True,
    metrics_host: Annotated[
        str, typer.Option(help="Interface of /metrics and /healthz (loopback unless you expose it on purpose).")
    ] = "127.0.0.1",
    metrics_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of /metrics and /healthz.")] = 9464,
) -> None:
    """Run job workers in their own process: they claim jobs from the metadata database. The process
    serves only /metrics and /healthz; SIGTERM drains it (no new claims, running steps finish)."""
    spec = _with_stores(load_app(spec_path), database_url, redis_url, artifacts_url, vectors_url)
    configure_logging(spec.observability.logs, log_level)
    monitor = worker_cli.MonitorOptions(metrics_host, metrics_port if metrics else None)
    try:
        worker_cli.run(spec, workers=workers, models=models, monitor=monitor)
    except StrataError as error:  # e.g. a custom step's entrypoint that does not import
        errors.print(f"[bold red]error:[/] {error.message}", highlight=False)
        raise typer.Exit(SPEC_ERROR_EXIT) from None


@app.command()
def validate(spec_path: Annotated[Path, typer.Argument(help="App spec (YAML) to check.")]) -> None:
    """Check an app spec; exit 2 with every problem named if it is invalid."""
    spec = load_app(spec_path)
    console.print(f"[green]ok[/]: app '{spec.name}' with {len(spec.routes)} route(s)")


@app.command()
def models(spec_path: AppArgument = None) -> None:
    """List the models an app serves, with their deployments and where their files are."""
    spec = load_app(spec_path)
    table = Table(title=f"Strata app '{spec.name}'")
    for column in ("route (model name)", "task", "deployment", "replicas", "batching", "source"):
        table.add_column(column)
    for route in spec.routes:
        deployment = spec.deployment(route.traffic_versions()[0].deployment)
        model = spec.model(deployment.model)
        batching = f"{deployment.batching.max_batch_size} / {deployment.batching.max_wait_ms:g} ms"
        table.add_row(
            route.name,
            model.task,
            deployment.name,
            str(deployment.replicas),
            batching,
            _source(model.path, model.entrypoint),
        )
    console.print(table)


def _source(path: str | None, entrypoint: str | None) -> str:
    if path is None:
        return f"python: {entrypoint}"
    try:
        folder = resolve_model_path(path)
    except StrataError as error:
        return f"[red]{error.message}[/]"
    return f"{path} ({folder})" if path.startswith(BUILTIN_PREFIX) else str(folder)


def _benchmarks_root() -> Path:
    """The checkout holding benchmarks/: the working directory, else the one Strata runs from."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "benchmarks" / "run.py").is_file():
            return candidate
    errors.print("[bold red]error:[/] no benchmarks/ folder here; run `strata bench` from a Strata checkout")
    raise typer.Exit(2)


@app.command()
def bench(
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these (repeat or comma-separate); `--list` prints their names. Without it, every "
            "benchmark but the long ones (soak) runs."
        ),
    ] = None,
    list_names: Annotated[
        bool, typer.Option("--list", help="Print each benchmark's name and what it measures, run nothing.")
    ] = False,
    duration: Annotated[float, typer.Option(help="Seconds per measured case.")] = 5.0,
    output: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
        "benchmarks/results/latest.json"
    ),
) -> None:
    """Run the benchmarks: served vs in-process ceilings, gateway and access overhead, continuous batching,
    the autonomy app, durable jobs, the autoscaling policy in simulation, the Ray runtime's overhead and scaling."""
    root = _benchmarks_root()
    sys.path.insert(0, str(root))
    # benchmarks/ lives in the checkout, not in the installed package: import it from there.
    runner = importlib.import_module("benchmarks.run")
    if list_names:
        for name, run in runner.BENCHMARKS.items():
            about = (sys.modules[run.__module__].__doc__ or "").strip().splitlines()
            when = "  (only with --only)" if name in runner.ON_REQUEST else ""
            console.print(f"[bold]{name}[/]{when}  {about[0] if about else ''}", highlight=False, soft_wrap=True)
        return
    names = (
        [name.strip() for entry in only for name in entry.split(",") if name.strip()]
        if only
        else [name for name in runner.BENCHMARKS if name not in runner.ON_REQUEST]
    )
    unknown = sorted(set(names) - set(runner.BENCHMARKS))
    if unknown:
        errors.print(f"[bold red]error:[/] unknown benchmark(s) {unknown}; known: {sorted(runner.BENCHMARKS)}")
        raise typer.Exit(2)
    runner.run(names, duration, output if output.is_absolute() else root / output, console)


@app.command("train-chat")
def train_chat(
    output: Annotated[Path, typer.Option(help="Folder to write the model to (HF format).")] = Path(
        "src/strata/assets/strata-chat-tiny"
    ),
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = DEFAULT_STEPS,
    seed: Annotated[int, typer.Option(help="Seed for the corpus, the initial weights and the batches.")] = 0,
) -> None:
    """Retrain the shipped demo chat model from the corpus the repo generates."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        report = train_chat_model(output, steps=steps, seed=seed, progress=progress)
    console.print(
        f"[green]trained[/] {report.params:,} parameters in {report.seconds:.0f} s, final loss {report.final_loss:.3f}"
        f" -> {output}"
    )


app.add_typer(keys_cli.app, name="keys")
app.add_typer(registry_cli.app, name="registry")
app.add_typer(prompts_cli.app, name="prompts")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(data_cli.app, name="data")
app.add_typer(deploy_cli.app, name="deploy")
app.add_typer(export_cli.app, name="export")
app.add_typer(cluster_cli.app, name="cluster")
app.add_typer(autonomy_cli.demo_app, name="demo")
app.command("train-autonomy")(autonomy_cli.train_autonomy)
