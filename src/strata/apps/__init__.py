"""Built-in apps Strata can serve without a spec file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from strata.spec import AppSpec, load_spec


def default_app_path() -> Path:
    return Path(str(resources.files("strata.apps") / "default.yaml"))


def default_app() -> AppSpec:
    """The app `strata serve` runs with no spec file: the shipped chat and embedding models."""
    return load_spec(default_app_path())
