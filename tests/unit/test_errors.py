"""Every StrataError survives pickling as itself: the Ray runtime sends a replica's errors to the
gateway that way, and the gateway re-raises them (only some classes are safe to retry)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import strata
from strata.errors import StrataError

SOURCE = Path(strata.__file__).parent


def _modules_defining_errors() -> set[str]:
    """Modules with a class deriving (directly or not) from StrataError, found in the source without
    importing everything (which would pull in torch, Ray and the CLI)."""
    classes: dict[str, tuple[str, list[str]]] = {}  # class name -> (module, base names)
    for path in SOURCE.rglob("*.py"):
        module = ".".join(("strata", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, ast.Name | ast.Attribute)
                ]
                classes[node.name] = (module, bases)
    errors = {"StrataError"}
    while True:
        more = {name for name, (_, bases) in classes.items() if errors & set(bases)} - errors
        if not more:
            return {classes[name][0] for name in errors}
        errors |= more


def _subclasses(cls: type[StrataError]) -> Iterator[type[StrataError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _every_error_class() -> list[type[StrataError]]:
    for module in sorted(_modules_defining_errors()):
        importlib.import_module(module)
    found = {cls for cls in [StrataError, *_subclasses(StrataError)] if cls.__module__.startswith("strata.")}
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _example(cls: type[StrataError]) -> StrataError:
    """An instance with every field its constructor takes set to a value other than its default."""
    offered: dict[str, Any] = {
        "param": "messages",
        "code": "custom_code",
        "retry_after_s": 7.5,
        "limit_headers": {"x-ratelimit-limit-requests": "10"},
        "allow": ["GET", "POST"],
    }
    parameters = inspect.signature(cls.__init__).parameters
    positional = [p for name, p in parameters.items() if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    keywords = {name: value for name, value in offered.items() if name in parameters}
    return cls(*(f"the {p.name} of {cls.__name__}" for p in positional), **keywords)


def test_the_search_finds_errors_outside_the_errors_module() -> None:
    names = {cls.__name__ for cls in _every_error_class()}
    assert {"StrataError", "InvalidRequest", "ModelNotFound", "RateLimited", "TryTimeout", "PipelineFailed"} <= names


@pytest.mark.parametrize("cls", _every_error_class(), ids=lambda cls: cls.__name__)
def test_every_error_round_trips_through_pickle_with_all_its_fields(cls: type[StrataError]) -> None:
    error = _example(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert back.args == error.args
    assert str(back) == str(error)
    assert vars(back) == vars(error)  # message, param, code, retry_after_s, limit_headers, ...
    assert (back.message, back.param, back.code) == (error.message, error.param, error.code)
    assert (back.status, back.error_type) == (error.status, error.error_type)
    assert back.headers() == error.headers()
    if hasattr(error, "retry_after_s"):
        assert back.retry_after_s == error.retry_after_s == 7.5
