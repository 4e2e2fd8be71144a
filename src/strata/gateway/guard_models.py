"""The guardrails' door to the serving layer: a guard asks a served route about one text."""

from __future__ import annotations

from typing import Any

from strata.governance.guard import Ask
from strata.serving.deployment import Deployment
from strata.serving.route import RequestContext
from strata.serving.server import ModelServer

_CONTEXT = RequestContext()


def route_asker(server: ModelServer) -> Ask:
    """``ask(route, text)``: the route's one output for ``text``, through its admission, retries and
    batching like any request's (a guard model shares its batches with the route's own callers)."""

    async def ask(route_name: str, text: str) -> Any:
        route = server.resolve(route_name)

        async def work(deployment: Deployment) -> Any:
            return await deployment.infer(text, _CONTEXT.deadline)

        output, _, _ = await route.serve(_CONTEXT, work)
        return output

    return ask
