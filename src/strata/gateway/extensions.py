"""Gateway extensions: apps that add their own routes and background work to the gateway.

An app spec lists ``extensions: [{entrypoint: "pkg.module:install", options: {...}}]``. Each
entrypoint is called once while the gateway is built, as ``install(app, server, options)``; it
adds routes to the FastAPI app and may return an async context manager, entered after the
gateway starts and exited before the models stop (for consumers, tickers and the like).
Routes an extension adds pass through the same middleware as every other route: under
``/v1/`` they need an API key with the ``infer`` scope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from strata.errors import SpecError
from strata.models.python_model import load_entrypoint
from strata.serving.server import ModelServer
from strata.spec import AppSpec

Lifetime = AbstractAsyncContextManager[None]
Extension = Callable[[FastAPI, ModelServer, dict[str, Any]], Lifetime | None]


def install_extensions(app: FastAPI, server: ModelServer, spec: AppSpec) -> list[Lifetime]:
    lifetimes: list[Lifetime] = []
    for index, extension in enumerate(spec.extensions):
        install: Extension = load_entrypoint(extension.entrypoint)
        try:
            lifetime = install(app, server, dict(extension.options))
        except SpecError as error:  # an extension names which of its options is wrong
            raise SpecError(f"extensions[{index}]: {error.message}", param=f"extensions[{index}].options") from None
        if lifetime is not None:
            lifetimes.append(lifetime)
    return lifetimes


@asynccontextmanager
async def running(lifetimes: list[Lifetime]) -> AsyncIterator[None]:
    """Enter every extension's lifetime in order; exit them in reverse."""
    async with AsyncExitStack() as stack:
        for lifetime in lifetimes:
            await stack.enter_async_context(lifetime)
        yield
