"""The plain Python / torch interface: any object with ``predict_batch`` can be served.

A spec names a factory as ``package.module:attribute``; Strata calls it with the model's
``options`` (and ``path``, the model's folder, when the spec names one) and serves the object it
returns with dynamic batching. ``warmup`` is optional.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from strata.errors import SpecError
from strata.models.base import BatchModel


class _WithWarmup:
    """Adapts a user object that has ``predict_batch`` but no ``warmup``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def predict_batch(self, inputs: Sequence[Any]) -> Sequence[Any]:
        result: Sequence[Any] = self._inner.predict_batch(inputs)
        return result

    def warmup(self) -> None:
        return None


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    module_name, _, attribute = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpecError(f"entrypoint: cannot import '{module_name}': {error}", param="entrypoint") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SpecError(f"entrypoint: '{module_name}' has no callable '{attribute}'", param="entrypoint")
    return factory  # type: ignore[no-any-return]


def build_python_model(entrypoint: str, options: dict[str, Any], path: Path | None = None) -> BatchModel:
    """``path``: the model's folder when its spec names one (a local folder, builtin:, or a registry
    version materialised by the server): the factory gets it as its ``path`` keyword."""
    factory = load_entrypoint(entrypoint)
    if path is not None:
        if "path" in options:
            raise SpecError("options: 'path' is set by the model's path; remove it from options", param="options")
        options = {**options, "path": str(path)}
    try:
        model = factory(**options)
    except TypeError as error:
        raise SpecError(f"options: {entrypoint} rejected its options: {error}", param="options") from None
    if not callable(getattr(model, "predict_batch", None)):
        raise SpecError(f"entrypoint: {entrypoint} returned an object without predict_batch()", param="entrypoint")
    if callable(getattr(model, "warmup", None)):
        return model  # type: ignore[no-any-return]
    return _WithWarmup(model)


class EchoModel:
    """Returns its inputs; optionally sleeps per batch. A reference model for the Python interface,
    and the no-op model the gateway-overhead benchmark measures."""

    def __init__(self, sleep_ms: float = 0.0, fail_on: str | None = None) -> None:
        self.sleep_s = sleep_ms / 1000.0
        self.fail_on = fail_on

    def predict_batch(self, inputs: Sequence[Any]) -> list[Any]:
        if self.fail_on is not None and self.fail_on in inputs:
            raise RuntimeError(f"EchoModel was asked to fail on {self.fail_on!r}")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return list(inputs)

    def warmup(self) -> None:
        self.predict_batch(["warmup"])
