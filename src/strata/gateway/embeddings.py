"""POST /v1/embeddings and POST /v1/models/{model}/predict: dynamically batched models.

Each input is its own batch item, so inputs from many requests share model calls.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from strata.errors import InvalidRequest, ModelFailed
from strata.gateway.call import Call, require_task
from strata.gateway.request_context import request_context
from strata.gateway.responses import JSONBytes, dumps
from strata.observability.behaviour import BehaviourMonitor
from strata.protocol.requests import EmbeddingRequest, PredictRequest
from strata.serving.deployment import Deployment
from strata.serving.route import RequestContext, Route, Served
from strata.serving.server import ModelServer


async def _infer_all(route: Route, context: RequestContext, inputs: list[Any]) -> tuple[list[Any], Served]:
    """Every input on one version of the route (or of one fallback), each with its own retries."""

    async def work(deployment: Deployment) -> list[Any]:
        if len(inputs) == 1:  # the common case: no task per input
            return [await deployment.infer(inputs[0], context.deadline)]
        return list(await asyncio.gather(*(deployment.infer(item, context.deadline) for item in inputs)))

    outputs, _, served = await route.serve(context, work)
    return outputs, served


def _encode(vector: np.ndarray, encoding_format: str) -> Any:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
    return vector


class BatchedAPI:
    def __init__(self, server: ModelServer, behaviour: BehaviourMonitor | None = None) -> None:
        self.server = server
        self.behaviour = behaviour  # samples inputs for drift windows: an embedding route's own vectors

    async def embeddings(self, call: Call) -> Response:
        started = time.perf_counter()
        body = call.parse(EmbeddingRequest)
        route = self.server.resolve(body.model)
        require_task(route, "embed", "embeddings")
        metrics = route.deployment.metrics
        metrics.parse.observe(time.perf_counter() - started)
        results, served = await _infer_all(route, request_context(call, body.user), body.texts())
        started = time.perf_counter()
        dimensions = len(results[0].vector)
        if body.dimensions is not None and body.dimensions != dimensions:
            raise InvalidRequest(
                f"The model '{route.name}' produces {dimensions} dimensions and cannot shorten them; "
                f"leave 'dimensions' out or send {dimensions}.",
                param="dimensions",
            )
        tokens = sum(result.tokens for result in results)
        call.record.tokens_in = tokens
        if self.behaviour is not None and self.behaviour.watches(route.name):
            self.behaviour.offer_vectors(route.name, [result.vector for result in results])
        data = [
            {"object": "embedding", "index": index, "embedding": _encode(result.vector, body.encoding_format)}
            for index, result in enumerate(results)
        ]
        payload = {
            "object": "list",
            "data": data,
            "model": route.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        content = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        response = JSONBytes(content, raw_headers=served.raw_headers)
        metrics.tokens_in.inc(tokens)
        metrics.postprocess.observe(time.perf_counter() - started)
        return response

    async def predict(self, call: Call) -> Response:
        started = time.perf_counter()
        body = call.parse(PredictRequest)
        route = self.server.resolve(call.params["model"])
        require_task(route, "predict", "predict")
        metrics = route.deployment.metrics
        metrics.parse.observe(time.perf_counter() - started)
        outputs, served = await _infer_all(route, request_context(call), body.inputs)
        if self.behaviour is not None and self.behaviour.watches(route.name):
            self.behaviour.offer_inputs(route.name, body.inputs)
        started = time.perf_counter()
        try:
            payload = dumps({"model": route.name, "outputs": outputs}, orjson.OPT_SERIALIZE_NUMPY)
        except (TypeError, ValueError) as error:
            raise ModelFailed(f"The model '{route.name}' returned output that is not JSON: {error}") from None
        metrics.postprocess.observe(time.perf_counter() - started)
        return JSONBytes(payload, raw_headers=served.raw_headers)
