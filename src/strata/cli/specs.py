"""How every command that takes an APP reads it: a spec file, or the built-in default app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from strata.apps import default_app
from strata.errors import StrataError
from strata.spec import AppSpec, load_spec

SPEC_ERROR_EXIT = 2
errors = Console(stderr=True)

AppArgument = Annotated[
    Path | None,
    typer.Argument(help="App spec (YAML). Without one, the built-in default app.", show_default=False),
]


def load_app(path: Path | None) -> AppSpec:
    """The spec at ``path`` (the default app without one); on a bad spec, every problem named and exit 2."""
    try:
        return load_spec(path) if path is not None else default_app()
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)  # a pattern is no markup
        raise typer.Exit(SPEC_ERROR_EXIT) from None
