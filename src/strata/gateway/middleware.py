"""Pure ASGI middleware for the hot path: no request objects, no extra tasks."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strata.errors import RequestTooLarge
from strata.gateway.errors import error_body
from strata.observability.metrics import Metrics

KNOWN_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
    }
)


def route_label(path: str) -> str:
    """A bounded label set: unknown paths must not grow the metric without limit."""
    if path in KNOWN_ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}/predict" if path.endswith("/predict") else "/v1/models/{model}"
    return "other"


class BodyLimitMiddleware:
    """Answers 413 when the declared or the actually received body exceeds ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await self._reject(send)
                return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body that never declared its length
                    raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send) -> None:
        body = error_body(
            f"The request body exceeds the limit of {self.max_body_bytes} bytes.",
            "invalid_request_error",
            None,
            "request_too_large",
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts requests and errors and times whole requests (streams included), per route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_label(scope["path"])
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(route=route, code=str(status)).inc()
            self.metrics.request_latency.labels(route=route).observe(time.perf_counter() - started)
