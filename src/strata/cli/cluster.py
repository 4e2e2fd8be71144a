"""`strata cluster`: look at, and tear down, an app running in distributed mode.

The controller and replica actors are detached: they outlive any gateway, so gateways can restart
or come and go without a cold start. Taking the app off the cluster is therefore an explicit act.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from strata.cli.specs import AppArgument, load_app
from strata.errors import StrataError
from strata.spec import AppSpec

if TYPE_CHECKING:
    from strata.runtime.ray_messages import ReplicaSet

app = typer.Typer(no_args_is_help=True, help="Status and teardown of an app on a Ray cluster (runtime: ray).")
console = Console()
errors = Console(stderr=True)

AddressOption = Annotated[
    str | None, typer.Option(envvar="STRATA_RAY_ADDRESS", help="Ray cluster (overrides the spec's ray.address).")
]
TIMEOUT_S = 30.0


def _controller(spec_path: Path | None, address: str | None) -> tuple[AppSpec, Any]:
    from strata.runtime.ray_runtime import connect, find_controller  # Ray loads only for these commands

    spec = load_app(spec_path)
    try:
        connect(address or spec.ray.address, spec.ray.namespace)
        return spec, find_controller(spec)
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError:
        errors.print(f"[bold red]error:[/] app '{spec.name}' is not running in namespace '{spec.ray.namespace}'")
        raise typer.Exit(1) from None


@app.command()
def status(
    spec_path: AppArgument = None,
    address: AddressOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the controller's whole view as JSON.")] = False,
) -> None:
    """Replicas of every deployment (state, node, in flight) and the autoscaler's last decision."""
    import ray

    _, controller = _controller(spec_path, address)
    view: ReplicaSet = ray.get(controller.replica_set.remote(f"cli:{os.getpid()}", {}), timeout=TIMEOUT_S)
    if as_json:
        print(json.dumps({name: deployment.json() for name, deployment in view.deployments.items()}, indent=2))
        return
    table = Table(title="replicas")
    for column in ("deployment", "replica", "state", "node", "in flight", "desired", "last decision"):
        table.add_column(column)
    for name, deployment in view.deployments.items():
        for replica in deployment.replicas:
            table.add_row(
                name,
                replica.replica_id,
                replica.state if replica.starting_for_s is None else f"starting ({replica.starting_for_s:.0f} s)",
                (replica.node_id or "-")[:12],
                str(replica.in_flight),
                str(deployment.desired),
                str(deployment.reason),
            )
        if not deployment.replicas:
            table.add_row(name, "-", "scaled to zero", "-", "0", str(deployment.desired), str(deployment.reason))
    console.print(table)


@app.command()
def down(spec_path: AppArgument = None, address: AddressOption = None) -> None:
    """Stop every replica of the app and its controller (gateways still running lose their replicas)."""
    import ray

    spec, controller = _controller(spec_path, address)
    ray.get(controller.shutdown.remote(), timeout=TIMEOUT_S)
    ray.kill(controller, no_restart=True)
    console.print(f"app '{spec.name}' is off the cluster")
