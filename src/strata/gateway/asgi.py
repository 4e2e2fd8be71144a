"""The gateway's ASGI application: one function takes every request through the whole path.

    match route -> authenticate, authorise, limit -> read body (bounded) -> handler -> send -> record

There is no middleware stack: each step is a line here, so a request costs one pass, no wrapped
``send``/``receive`` and no per-request task or thread. Every request gets one ``RequestRecord``;
metrics and the access layer's usage and audit read it when the request ends. Every error, from any
step, leaves as OpenAI's error JSON with its status.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from strata.access import AccessControl
from strata.errors import ClientGone, MethodNotAllowed, NotFound, RequestTooLarge, StrataError
from strata.gateway.call import Call
from strata.gateway.openapi import document
from strata.gateway.routing import Endpoint, Match, RouteTable
from strata.gateway.routing import Scope as Needs
from strata.observability.behaviour import BehaviourMonitor
from strata.observability.lean import CounterChild, HistogramChild
from strata.observability.metrics import Metrics
from strata.observability.traces.context import format_traceparent
from strata.observability.traces.pipeline import Tracing
from strata.protocol.errors import error_body
from strata.record import RequestRecord, current_record

log = logging.getLogger(__name__)

Lifespan = Callable[[], AbstractAsyncContextManager[None]]

_PROMPT_LIMIT_BYTES = 65_536  # a kept prompt is cut here: audit rows must stay small
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SERVER_ERROR = error_body("The server had an error while processing your request.", "server_error", None,
                           "internal_error")  # fmt: skip


class Gateway:
    def __init__(
        self,
        table: RouteTable,
        access: AccessControl,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        lifespan: Lifespan,
        title: str,
        version: str,
        tracing: Tracing | None = None,
        behaviour: BehaviourMonitor | None = None,
    ) -> None:
        self.table = table
        self.access = access
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.lifespan = lifespan
        self.behaviour = behaviour  # per-route output length and request counts (guard-hit rates), drift
        self.tracing = tracing  # None: tracing is off (no ids, no traceparent header, nothing kept)
        self.title, self.version = title, version
        self.state: dict[str, Any] = {}  # what extensions keep on the app (e.g. the autonomy service)
        self._openapi: dict[str, Any] | None = None
        self._children: dict[tuple[str, int], tuple[CounterChild, HistogramChild, CounterChild | None]] = {}
        self._costs: dict[str, HistogramChild] = {}
        self._kept_limit = access.data.spec.max_content_bytes  # a kept prompt or output is cut here

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every route in the table (built once)."""
        if self._openapi is None:
            self._openapi = document(self.table, title=self.title, version=self.version)
        return self._openapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not served
            await send({"type": "websocket.close", "code": 1000})

    # One request

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = RequestRecord(scope["method"], scope["path"])
        if self.tracing is not None:
            self.tracing.start(record, scope)
        token = current_record.set(record)
        metered = False
        try:
            found = self.table.match(record.method, record.path)
            if not isinstance(found, Match):
                raise _no_route(record, found)
            endpoint = found.endpoint
            record.route, metered = endpoint.path, endpoint.metered
            await self._admit(scope, record, endpoint, found.params)
            body = await self._read_body(scope, receive) if record.method in _BODY_METHODS else b""
            if metered:
                self._note_request(record, body)
            response = await endpoint.handler(Call(scope, receive, record, body, found.params))
            await self._send(response, scope, receive, send, record, metered)
        except StrataError as error:
            await self._send_error(error, record, send)
        except Exception:  # the boundary: any bug becomes a 500 with the cause logged, never a dead server
            log.exception("unhandled error on %s %s", record.method, record.path)
            if not record.status:  # nothing sent yet
                headers = [(b"content-type", b"application/json"), *_trace_headers(record)]
                await _send_bytes(send, 500, _SERVER_ERROR, headers)
            record.status = 500
        finally:
            current_record.reset(token)
            await self._finish(record, metered)

    async def _admit(self, scope: Scope, record: RequestRecord, endpoint: Endpoint, params: dict[str, str]) -> None:
        if endpoint.scope is Needs.OPEN or (endpoint.path == "/metrics" and self.access.spec.metrics_open):
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            record.caller = await self.access.authenticate(authorization)
            model = params.get(endpoint.model_param) if endpoint.model_param else None
            if model is not None:
                record.model = model
            await self.access.authorize(record.caller, endpoint.scope.value, record.method, record.path, model)
        except StrataError as error:
            self.access.deny(record, error)
            raise
        record.authorised = time.perf_counter()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
        message = await receive()
        body: bytes = message.get("body", b"")
        size = len(body)
        if size <= limit and not message.get("more_body", False):
            if not body and message["type"] == "http.disconnect":
                raise ClientGone("The client left before sending its body.")
            return body  # the common case: one message holds the whole body
        chunks = [body]
        while size <= limit and message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":  # e.g. closed by the body deadline (http_protocol.py)
                raise ClientGone("The client left before its body was complete.")
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
        if size > limit:  # a chunked body that never declared its length
            raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
        return b"".join(chunks)

    def _note_request(self, record: RequestRecord, body: bytes) -> None:
        level = self.access.data_level(record.tenant)
        if level != "none":  # the tenant's data policy keeps this request (exchanges.py)
            record.data_level = level
            if level == "full":
                record.kept_prompt = body[: self._kept_limit].decode("utf-8", "replace")
        if not self.access.spec.audit_inference and level == "none":
            return
        record.hash_request(body)
        if self.access.spec.audit_inference and self.access.stores_prompts(record.tenant):
            record.prompt = body[:_PROMPT_LIMIT_BYTES].decode("utf-8", "replace")

    async def _send(
        self,
        response: Response,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: RequestRecord,
        metered: bool,
    ) -> None:
        """Send ``response``; ``record.status`` is set once its start has gone (a response has begun)."""
        hashing = metered and (self.access.spec.audit_inference or record.data_level is not None)
        body = getattr(response, "body", None)
        if isinstance(body, bytes) and type(response).__call__ is Response.__call__:
            # A whole body: two messages, sent from here (no Starlette call, no wrapped send).
            record.status = response.status_code
            headers = response.raw_headers
            if record.span_id:  # a new list: a handler may answer with a response it shares
                traceparent = format_traceparent(record.trace_id, record.span_id, record.trace_flags)
                headers = [*headers, (b"traceparent", traceparent)]
            record.first_byte = time.perf_counter()
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            record.last_byte = time.perf_counter()
            record.response_bytes = len(body)
            if hashing and body:
                record.response_sha256 = hashlib.sha256(body).hexdigest()
            if record.data_level == "full":
                record.kept_output = body[: self._kept_limit].decode("utf-8", "replace")
            return
        await self._send_streamed(response, scope, receive, send, record, hashing)

    async def _send_streamed(
        self,
        response: Response,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: RequestRecord,
        hashing: bool,
    ) -> None:
        """A streamed response (SSE, files): its chunks are counted, hashed and timed as they leave."""
        digest = hashlib.sha256() if hashing else None
        kept: list[bytes] | None = [] if record.data_level == "full" else None
        limit = self._kept_limit

        async def measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                if record.span_id:
                    message = {**message, "headers": [*message.get("headers", ()), *_trace_headers(record)]}
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk:
                    if not record.first_byte:
                        record.first_byte = time.perf_counter()
                    record.response_bytes += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    if kept is not None and record.response_bytes - len(chunk) < limit:
                        kept.append(chunk)  # only up to the policy's limit: a long stream keeps its start
            await send(message)

        try:
            await response(scope, receive, measured)
        finally:
            record.last_byte = time.perf_counter()
            if digest is not None and record.response_bytes:
                record.response_sha256 = digest.hexdigest()
            if kept is not None:
                record.kept_output = b"".join(kept)[:limit].decode("utf-8", "replace")

    async def _send_error(self, error: StrataError, record: RequestRecord, send: Send) -> None:
        record.error_code = error.code
        if record.status:  # the response already began (a stream): its own error event told the client
            return
        record.status = error.status
        body = error_body(error.message, error.error_type, error.param, error.code)
        headers = [(b"content-type", b"application/json"), *_trace_headers(record)]
        headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
        record.first_byte = time.perf_counter()
        await _send_bytes(send, error.status, body, headers)
        record.last_byte = time.perf_counter()
        record.response_bytes = len(body)

    async def _finish(self, record: RequestRecord, metered: bool) -> None:
        """Metrics from the record; the access layer's usage and audit for inference work."""
        if not record.last_byte:
            record.last_byte = time.perf_counter()
        requests, latency, errors = self._children_for(record.route, record.status)
        requests.inc()
        if record.trace_id:
            latency.observe_traced(record.last_byte - record.received, record.trace_id)
        else:
            latency.observe(record.last_byte - record.received)
        if errors is not None:
            errors.inc()
        if metered:
            if self.behaviour is not None:
                self.behaviour.finish(record)
            try:
                await self.access.finish(record)
            except Exception:  # boundary: bookkeeping must never fail a request that was answered
                log.exception("recording %s %s failed", record.method, record.path)
            if record.cost and record.deployment is not None:
                self._cost_of(record.deployment).observe(record.cost)
        if self.tracing is not None:
            self.tracing.finish(record)

    def _cost_of(self, deployment: str) -> HistogramChild:
        child = self._costs.get(deployment)
        if child is None:
            child = self._costs[deployment] = self.metrics.request_cost.labels(deployment=deployment)
        return child

    def _children_for(self, route: str, status: int) -> tuple[CounterChild, HistogramChild, CounterChild | None]:
        # Metric children bound once per (route, status): the request path does no label lookups.
        children = self._children.get((route, status))
        if children is None:
            code = str(status)
            errors = self.metrics.errors.labels(route=route, code=code) if status >= 400 else None
            children = (
                self.metrics.requests.labels(route=route, status=code),
                self.metrics.request_latency.labels(route=route),
                errors,
            )
            self._children[(route, status)] = children
        return children

    # Lifespan

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        lifetime = self.lifespan()
        try:
            await lifetime.__aenter__()
        except BaseException as error:
            log.exception("the gateway could not start")
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await lifetime.__aexit__(None, None, None)
        except BaseException as error:
            log.exception("the gateway did not stop cleanly")
            await send({"type": "lifespan.shutdown.failed", "message": str(error)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _no_route(record: RequestRecord, allowed: set[str] | None) -> StrataError:
    if allowed:
        return MethodNotAllowed(
            f"{record.method} {record.path}: method not allowed (allowed: {', '.join(sorted(allowed))}).",
            allow=sorted(allowed),
        )
    return NotFound(f"{record.method} {record.path}: no such route.", code="not_found")


def _trace_headers(record: RequestRecord) -> list[tuple[bytes, bytes]]:
    """The response's ``traceparent``: the caller can look its request's trace up by this trace id."""
    if not record.span_id:
        return []
    return [(b"traceparent", format_traceparent(record.trace_id, record.span_id, record.trace_flags))]


async def _send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
