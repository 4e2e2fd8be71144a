"""`strata prompts create|list|show|rollback`: a tenant's prompt templates, through a running server.

The server's API is the only way in (``/v1/prompts``): it checks each version in the sandbox before
storing it, scopes it to the key's tenant, and serves a new current version at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

from strata.cli.rollout import DEFAULT_URL, UrlOption

app = typer.Typer(no_args_is_help=True, help="Prompt templates: create versions, list, show, roll back.")
console = Console()
errors = Console(stderr=True)

KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="STRATA_API_KEY", help="An API key of the prompts' tenant.")
]
IdArgument = Annotated[str, typer.Argument(help="The prompt's id.")]


def _call(method: str, url: str, api_key: str | None, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}/v1/prompts{path}", json=body, headers=headers, timeout=30)
    except httpx.TransportError as error:
        errors.print(f"[bold red]error:[/] cannot reach {url}: {error}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            error_json = response.json()["error"]
            where = f" ({error_json['param']})" if error_json.get("param") else ""
            message = f"{error_json['message']}{where}"
        except (ValueError, KeyError, TypeError):
            message = response.text
        errors.print(f"[bold red]error ({response.status_code}):[/] {message}", highlight=False)
        raise typer.Exit(1)
    return response.json()


def _read_template(path: Path) -> dict[str, Any]:
    """A version's body from YAML or JSON: messages, and optionally variables and description."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        errors.print(f"[bold red]error:[/] cannot read {path}: {error}")
        raise typer.Exit(2) from None
    if not isinstance(loaded, dict):
        errors.print(f"[bold red]error:[/] {path}: expected a mapping with 'messages' (and 'variables')")
        raise typer.Exit(2)
    return loaded


def _summary(prompt: dict[str, Any]) -> str:
    current, latest = prompt["current_version"], prompt["latest_version"]
    return f"prompt [bold]{prompt['id']}[/]: version {current} current (latest {latest})"


def _show_version(version: dict[str, Any]) -> None:
    if version.get("description"):
        console.print(version["description"])
    for message in version["messages"]:
        console.print(f"[bold]{message['role']}[/]: {message['content']}", highlight=False, markup=False)
    if version["variables"]:
        table = Table("variable", "type", "required", "default")
        for name, spec in version["variables"].items():
            required = spec.get("required")
            required = (spec.get("default") is None) if required is None else required
            table.add_row(name, spec["type"], "yes" if required else "no", json.dumps(spec.get("default")))
        console.print(table)


@app.command()
def create(
    prompt_id: IdArgument,
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML or JSON: messages, variables, description.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Create the prompt's next version (version 1 creates it); it becomes the current one."""
    body = {**_read_template(file), "id": prompt_id}
    console.print(_summary(_call("POST", url, api_key, "", body)))


@app.command("list")
def list_prompts(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """The tenant's prompts and their current versions."""
    table = Table("id", "current", "latest", "description")
    after: str | None = None
    while True:
        page = _call("GET", url, api_key, f"?limit=100{'' if after is None else f'&after={after}'}")
        for prompt in page["data"]:
            description = prompt["template"]["description"] or ""
            table.add_row(prompt["id"], str(prompt["current_version"]), str(prompt["latest_version"]), description)
        if not page["has_more"]:
            break
        after = page["last_id"]
    console.print(table)


@app.command()
def show(
    prompt_id: IdArgument,
    version: Annotated[int | None, typer.Option(help="A version; default: the current one.")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """A prompt's versions, and the messages and variables of one of them."""
    prompt = _call("GET", url, api_key, f"/{prompt_id}")
    versions = _call("GET", url, api_key, f"/{prompt_id}/versions")["data"]
    console.print(_summary(prompt))
    console.print("versions: " + ", ".join(str(v["version"]) for v in versions))
    _show_version(
        prompt["template"] if version is None else _call("GET", url, api_key, f"/{prompt_id}/versions/{version}")
    )


@app.command()
def rollback(
    prompt_id: IdArgument,
    to: Annotated[
        int | None, typer.Option("--to", help="The version to make current; default: the one before.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Make an earlier version current again."""
    body = {} if to is None else {"version": to}
    console.print(_summary(_call("POST", url, api_key, f"/{prompt_id}/rollback", body)))
