"""`strata deploy kubernetes APP`: render the manifests that run an app in distributed mode."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from strata.cli.specs import SPEC_ERROR_EXIT, AppArgument, load_app
from strata.deploy import KubernetesOptions, manifests_yaml, render_kubernetes, write_manifests
from strata.errors import StrataError
from strata.spec.loader import describe_validation_error

app = typer.Typer(no_args_is_help=True, help="Render what it takes to run an app on a cluster.")
console = Console()
errors = Console(stderr=True)


def _installed_ray_version() -> str | None:
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return None


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(SPEC_ERROR_EXIT)


def _as_option(problem: str) -> str:
    """'max_gateways: ...' -> '--max-gateways: ...': name the flag the user typed, not the field."""
    field, separator, message = problem.partition(": ")
    if not separator or " " in field:  # a problem of the options as a whole
        return problem
    return f"--{field.replace('_', '-')}: {message}"


@app.command()
def kubernetes(
    image: Annotated[str, typer.Option(help="Container image with Strata and its distributed extra (Ray).")],
    namespace: Annotated[str, typer.Option(help="Namespace of every object.")] = "default",
    gateways: Annotated[int, typer.Option(help="Gateway pods to start with (the autoscaler's minimum).")] = 2,
    max_gateways: Annotated[
        int | None, typer.Option(help="Most gateway pods the autoscaler runs (default: 4 x --gateways).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Workflow worker pods (`strata worker`); 0 for none.")] = 1,
    ray_version: Annotated[
        str | None, typer.Option(help="Ray version in the image (default: the Ray installed here).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder to write one YAML file per object to (default: all to stdout).")
    ] = None,
    spec_path: AppArgument = None,
) -> None:
    """KubeRay RayCluster, gateway Deployment + Service + HPA + PDB, worker Deployment, app spec ConfigMap."""
    spec = load_app(spec_path)
    version = ray_version or _installed_ray_version()
    if version is None:
        raise _fail("--ray-version: Ray is not installed here to take it from; give the Ray version of the image")
    try:
        options = KubernetesOptions(
            image=image,
            namespace=namespace,
            gateways=gateways,
            max_gateways=max_gateways,
            workers=workers,
            ray_version=version,
        )
    except ValidationError as error:
        problems = [_as_option(line) for line in describe_validation_error(error)]
        raise _fail("invalid options:\n  " + "\n  ".join(problems)) from None
    try:
        manifests = render_kubernetes(spec, options)
    except StrataError as error:
        raise _fail(error.message) from None
    if output is None:
        typer.echo(manifests_yaml(manifests), nl=False)
        return
    for path in write_manifests(manifests, output):
        console.print(f"wrote {path}", highlight=False)
    console.print(f"[green]ok[/]: {len(manifests)} object(s) for app '{spec.name}'; kubectl apply -f {output}")
