"""Liveness, readiness, metrics and the model list: the endpoints operators and clients poll."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from starlette.responses import Response

from strata.gateway.call import Call
from strata.serving.server import ModelServer


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class OperationsAPI:
    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.started_at = int(time.time())
        self.before_scrape: list[Callable[[], None]] = []  # gauges read from their owners at each scrape

    async def healthz(self, call: Call) -> Response:
        return _json({"status": "alive"})

    async def readyz(self, call: Call) -> Response:
        deployments = {
            d.name: {
                "ready_replicas": d.ready_replicas,
                "replicas": len(d.slots),
                "errors": d.load_errors,
                # Per replica: alive (its worker runs) and ready (loaded, warmed, not ejected or restarting).
                "replica_states": {
                    slot.replica.replica_id: {"alive": slot.replica.alive, "ready": slot.replica.ready}
                    for slot in d.slots
                },
            }
            for d in self.server.deployments.values()
        }
        ready = self.server.ready
        return _json({"status": "ready" if ready else "not_ready", "deployments": deployments}, 200 if ready else 503)

    async def metrics(self, call: Call) -> Response:
        for refresh in self.before_scrape:
            refresh()
        for deployment in self.server.deployments.values():
            self.server.metrics.replicas_ready.labels(deployment=deployment.name).set(deployment.ready_replicas)
        # Prometheus asks for OpenMetrics first when exemplar storage is on; that format carries them.
        if "application/openmetrics-text" in call.headers.get("accept", ""):
            return Response(self.server.metrics.render(openmetrics=True), media_type=OPENMETRICS_CONTENT_TYPE)
        return Response(self.server.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def _model_card(self, name: str) -> dict[str, object]:
        route = self.server.routes[name]
        return {
            "id": name,
            "object": "model",
            "created": self.started_at,
            "owned_by": "strata",
            "task": route.task,
            "ready": route.deployment.ready,
        }

    async def list_models(self, call: Call) -> Response:
        caller = call.caller  # a key limited to some models lists only those
        names = [n for n in self.server.routes if caller.allows_model(n)]
        return _json({"object": "list", "data": [self._model_card(name) for name in names]})

    async def get_model(self, call: Call) -> Response:
        route = self.server.resolve(call.params["model"])
        return _json(self._model_card(route.name))
