"""`strata rollout start|status|promote|abort|switch`: traffic management over the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

rollout_app = typer.Typer(no_args_is_help=True, help="Canary rollouts and blue-green switches of a route's versions.")
console = Console()
errors = Console(stderr=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="STRATA_URL", help="The Strata server.")]
KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="STRATA_API_KEY", help="An API key with the admin scope.")
]
RouteArgument = Annotated[str, typer.Argument(help="The route (the model name clients send).")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, url: str, api_key: str | None, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}/v1/admin{path}", json=body, headers=headers, timeout=30)
    except httpx.TransportError as error:
        errors.print(f"[bold red]error:[/] cannot reach {url}: {error}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        errors.print(f"[bold red]error ({response.status_code}):[/] {message}", highlight=False)
        raise typer.Exit(1)
    return response.json()


def rollout_options(steps: str | None, window_s: float | None, min_requests: int | None) -> dict[str, Any]:
    """The rollout settings given on the command line, as the API's body fields (the rest default there)."""
    options: dict[str, Any] = {}
    if steps is not None:
        try:
            options["steps"] = [float(step) for step in steps.split(",")]
        except ValueError:
            errors.print(f"[bold red]error:[/] --steps must be numbers separated by commas, got {steps!r}")
            raise typer.Exit(2) from None
    if window_s is not None:
        options["window_s"] = window_s
    if min_requests is not None:
        options["min_requests"] = min_requests
    return options


def _show(status: dict[str, Any] | None, weights: dict[str, float] | None = None) -> None:
    if status is None:
        console.print("no rollout on this route")
    else:
        console.print(
            f"canary [bold]{status['canary']}[/] vs stable [bold]{status['stable']}[/]: {status['phase']} "
            f"at {status['canary_weight']:g}% (steps {status['steps']}, window {status['window_s']:g} s)"
        )
        if status["reason"]:
            console.print(f"reason: {status['reason']}")
        for event in status["events"]:
            console.print(f"  +{event['after_s']:.1f} s  {event['what']}")
    if weights is not None:
        table = Table("version", "weight %")
        for name, weight in weights.items():
            table.add_row(name, f"{weight:g}")
        console.print(table)


@rollout_app.command()
def start(
    route: RouteArgument,
    canary: Annotated[str, typer.Option(help="The version to roll out.")],
    steps: Annotated[str | None, typer.Option(help="Canary weights, e.g. 5,25,50,100.")] = None,
    window_s: Annotated[float | None, typer.Option(help="Seconds each step is watched.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Canary requests needed to judge it.")] = None,
    manual: Annotated[bool, typer.Option(help="Never advance on its own: wait for `promote`.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Start a progressive rollout: promoted step by step, rolled back on a regression."""
    body: dict[str, Any] = {"canary": canary, **rollout_options(steps, window_s, min_requests)}
    if manual:
        body["auto_promote"] = False
    _show(_call("POST", url, api_key, f"/routes/{route}/rollout", body))


@rollout_app.command()
def status(route: RouteArgument, url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """Show the route's rollout and current weights."""
    reply = _call("GET", url, api_key, f"/routes/{route}/rollout")
    _show(reply["rollout"], reply["weights"])


@rollout_app.command()
def promote(route: RouteArgument, url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """Advance the canary to its next step now."""
    _show(_call("POST", url, api_key, f"/routes/{route}/rollout/promote"))


@rollout_app.command()
def abort(route: RouteArgument, url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """Roll back: all traffic to the stable version at once."""
    _show(_call("POST", url, api_key, f"/routes/{route}/rollout/abort"))


@rollout_app.command()
def switch(
    route: RouteArgument,
    weights: Annotated[list[str], typer.Argument(help="VERSION=WEIGHT pairs adding up to 100, e.g. green=100.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Set the weights at once: a blue-green switch (green=100) or switch-back (blue=100)."""
    parsed: dict[str, float] = {}
    for pair in weights:
        name, _, value = pair.partition("=")
        try:
            parsed[name] = float(value)
        except ValueError:
            errors.print(f"[bold red]error:[/] expected VERSION=WEIGHT, got {pair!r}")
            raise typer.Exit(2) from None
    reply = _call("PUT", url, api_key, f"/routes/{route}/traffic", {"weights": parsed})
    _show(None if reply["rollout"] is None else reply["rollout"], {v["name"]: v["weight"] for v in reply["versions"]})
