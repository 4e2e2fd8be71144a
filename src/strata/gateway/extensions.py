"""Gateway extensions: apps that add their own routes and background work to the gateway.

An app spec lists ``extensions: [{entrypoint: "pkg.module:install", options: {...}}]``. Each
entrypoint is called once while the gateway is built, as ``install(server, options)``, and returns
an ``Extension``: the routes it serves, declared as ``Endpoint``s exactly like the gateway's own (so
they are dispatched, checked, measured and documented the same way), and optionally an async
context manager entered after the gateway starts and exited before the models stop (consumers,
tickers and the like), and gRPC services served on ``gateway.grpc_port`` beside the Open Inference
Protocol's (each answers on the extension's own routes, through the gateway). Extension routes
cannot replace the platform's: a clash fails at build time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from strata.errors import SpecError
from strata.gateway.grpc.server import GrpcService
from strata.gateway.routing import Endpoint
from strata.models.python_model import load_entrypoint
from strata.serving.server import ModelServer
from strata.spec import AppSpec

Lifetime = AbstractAsyncContextManager[None]


@dataclass
class Extension:
    endpoints: list[Endpoint]
    lifetime: Lifetime | None = None
    state: dict[str, Any] = field(default_factory=dict)  # kept on the gateway's ``state`` (tools, tests)
    grpc_services: list[GrpcService] = field(default_factory=list)  # served when ``gateway.grpc_port`` is set


Install = Callable[[ModelServer, dict[str, Any]], Extension]


def load_extensions(server: ModelServer, spec: AppSpec) -> list[Extension]:
    extensions = []
    for index, declared in enumerate(spec.extensions):
        install: Install = load_entrypoint(declared.entrypoint)
        try:
            extensions.append(install(server, dict(declared.options)))
        except SpecError as error:  # an extension names which of its options is wrong
            raise SpecError(f"extensions[{index}]: {error.message}", param=f"extensions[{index}].options") from None
    return extensions


@asynccontextmanager
async def running(lifetimes: list[Lifetime]) -> AsyncIterator[None]:
    """Enter every extension's lifetime in order; exit them in reverse."""
    async with AsyncExitStack() as stack:
        for lifetime in lifetimes:
            await stack.enter_async_context(lifetime)
        yield
