"""Reads an app spec from YAML and reports every problem in one message naming the fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from strata.errors import SpecError
from strata.spec.models import AppSpec


def field_path(location: tuple[int | str, ...]) -> str:
    """Render pydantic's error location the way a user reads YAML: ``deployments[0].batching``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, each starting with the field it is about."""
    lines = []
    for item in error.errors(include_url=False):
        location = field_path(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return lines


def parse_spec(data: Any, *, source: str = "app spec") -> AppSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return AppSpec.model_validate(data)
    except ValidationError as error:
        problems = describe_validation_error(error)
        raise SpecError(f"{source} is invalid:\n  " + "\n  ".join(problems)) from None


def load_spec(path: Path) -> AppSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read app spec {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    return parse_spec(data, source=str(path))
