"""Admin API for traffic and resilience, under /v1/admin/ (the access layer guards the prefix):
route versions and weights, blue-green switches, progressive rollouts, and the live state of
every deployment's replicas, breakers, admission and retry budget."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from pydantic import Field, ValidationError
from starlette.responses import Response

from strata.errors import Conflict, InvalidRequest
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.protocol.errors import invalid_request_from
from strata.protocol.requests import WHOLE, RequestModel
from strata.serving.route import Route
from strata.serving.server import ModelServer

PREFIX = "/v1/admin"


class WeightsRequest(RequestModel):
    weights: Annotated[dict[str, Annotated[float, Field(ge=0, le=100)]], Field(min_length=1)]


class RolloutOverrides(RequestModel):
    """Overrides of a route's rollout defaults (bounded as in ``RolloutSpec``; the steps must also rise
    strictly to 100)."""

    steps: Annotated[list[Annotated[float, Field(gt=0, le=100)]], Field(min_length=1)] | None = None
    window_s: Annotated[float, Field(gt=0)] | None = None
    min_requests: Annotated[int, Field(ge=1), WHOLE] | None = None
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] | None = None
    max_p99_ratio: Annotated[float, Field(gt=1)] | None = None
    p99_slack_ms: Annotated[float, Field(ge=0)] | None = None
    auto_promote: bool | None = None


class RolloutRequest(RolloutOverrides):
    """The canary version, and overrides of the route's rollout defaults."""

    canary: str = Field(min_length=1)


class TrafficAdminAPI:
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def _route(self, call: Call) -> Route:
        return self.server.resolve(call.params["route"])

    async def list_routes(self, call: Call) -> Response:
        return json_response({"routes": [route.snapshot() for route in self.server.routes.values()]})

    async def list_deployments(self, call: Call) -> Response:
        return json_response({"deployments": {name: d.snapshot() for name, d in self.server.deployments.items()}})

    async def set_weights(self, call: Call) -> Response:
        route = self._route(call)
        body = call.parse(WeightsRequest)
        try:
            route.set_weights(body.weights)
        except KeyError as error:
            raise InvalidRequest(str(error.args[0]), param="weights") from None
        except ValueError as error:
            raise InvalidRequest(str(error), param="weights") from None
        return json_response(route.snapshot())

    async def start_rollout(self, call: Call) -> Response:
        route = self._route(call)
        body = call.parse(RolloutRequest)
        overrides = body.model_dump(exclude={"canary"}, exclude_none=True)
        try:
            spec = route.rollout_spec(overrides)
        except ValidationError as error:
            raise invalid_request_from(error) from None
        try:
            rollout = route.start_rollout(body.canary, spec)
        except KeyError as error:
            raise InvalidRequest(str(error.args[0]), param="canary") from None
        except ValueError as error:
            raise Conflict(str(error)) from None
        return json_response(rollout.status(), 201)

    async def rollout_status(self, call: Call) -> Response:
        route = self._route(call)
        if route.rollout is None:
            return json_response({"route": route.name, "rollout": None, "weights": route.split.weights})
        return json_response({"route": route.name, "rollout": route.rollout.status(), "weights": route.split.weights})

    async def promote(self, call: Call) -> Response:
        route = self._route(call)
        try:
            rollout = route.promote()
        except ValueError as error:
            raise Conflict(str(error)) from None
        return json_response(rollout.status())

    async def abort(self, call: Call) -> Response:
        route = self._route(call)
        try:
            rollout = route.abort()
        except ValueError as error:
            raise Conflict(str(error)) from None
        return json_response(rollout.status())

    async def cluster(self, call: Call) -> Response:
        """The runtime's view: for Ray, this gateway's sync state and the controller's replicas and
        recent autoscaling decisions per deployment."""
        return json_response(self.server.runtime.snapshot())

    async def metrics_targets(self, call: Call) -> Response:
        """Prometheus HTTP service discovery (``http_sd_configs``): every replica's own metrics endpoint,
        labelled with its deployment and replica. Empty on the local runtime, whose /metrics has it all."""
        return json_response(self.server.runtime.metrics_targets())


def add_traffic_admin_routes(app: FastAPI, server: ModelServer) -> None:
    api = TrafficAdminAPI(server)
    # Most specific first: a route name may itself contain '/'.
    app.add_api_route(f"{PREFIX}/routes/{{route:path}}/rollout/promote", api.promote, methods=["POST"])
    app.add_api_route(f"{PREFIX}/routes/{{route:path}}/rollout/abort", api.abort, methods=["POST"])
    app.add_api_route(f"{PREFIX}/routes/{{route:path}}/rollout", api.start_rollout, methods=["POST"])
    app.add_api_route(f"{PREFIX}/routes/{{route:path}}/rollout", api.rollout_status, methods=["GET"])
    app.add_api_route(f"{PREFIX}/routes/{{route:path}}/traffic", api.set_weights, methods=["PUT"])
    app.add_api_route(f"{PREFIX}/routes", api.list_routes, methods=["GET"])
    app.add_api_route(f"{PREFIX}/deployments", api.list_deployments, methods=["GET"])
    app.add_api_route(f"{PREFIX}/cluster", api.cluster, methods=["GET"])
    app.add_api_route(f"{PREFIX}/cluster/targets", api.metrics_targets, methods=["GET"])
