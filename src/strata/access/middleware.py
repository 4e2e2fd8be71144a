"""Pure ASGI middleware: every request is authenticated, authorised and limited before any handler runs.

Denials are answered here (OpenAI error JSON) and audited. Inference requests are also measured on
the way through - body sizes and SHA-256 of request and response - for usage and the audit trail.
"""

from __future__ import annotations

import hashlib
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strata.access.audit import AuditEvent
from strata.access.control import AccessControl, Exchange
from strata.access.metering import MODEL, USAGE
from strata.access.policy import OPEN_PATHS, model_in_path, required_scope
from strata.access.principal import Principal
from strata.errors import StrataError
from strata.gateway.errors import error_body

_PROMPT_LIMIT_BYTES = 65_536  # a kept prompt is cut here: audit rows must stay small


class AccessMiddleware:
    def __init__(self, app: ASGIApp, control: AccessControl) -> None:
        self.app = app
        self.control = control
        self.open_paths = OPEN_PATHS | ({"/metrics"} if control.spec.metrics_open else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        principal = None
        try:
            principal = await self.control.authenticate(authorization)
            await self.control.authorize(principal, method, path)
        except StrataError as error:
            tenant, actor = (None, None) if principal is None else (principal.tenant, principal.key_id)
            reason = {"reason": error.code}
            self.control.audit(AuditEvent("denial", f"{method} {path}", error.status, tenant, actor, reason))
            await _send_error(send, error)
            return
        scope.setdefault("state", {})["principal"] = principal
        if method == "POST" and required_scope(path) == "infer":
            await self._metered(principal, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _metered(self, principal: Principal, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_hash, response_hash = hashlib.sha256(), hashlib.sha256()
        sizes = [0, 0]
        status = 500
        served: dict[bytes, str] = {}  # x-strata-route / x-strata-version: what actually answered
        keep_prompt = self.control.stores_prompts(principal.tenant)
        prompt = bytearray()

        async def receive_measured() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                sizes[0] += len(chunk)
                request_hash.update(chunk)
                if keep_prompt and len(prompt) < _PROMPT_LIMIT_BYTES:
                    prompt.extend(chunk[: _PROMPT_LIMIT_BYTES - len(prompt)])
            return message

        async def send_measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                served.update((k, v.decode("latin-1")) for k, v in message.get("headers", ()) if k in _SERVED_HEADERS)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                sizes[1] += len(chunk)
                response_hash.update(chunk)
            await send(message)

        try:
            await self.app(scope, receive_measured, send_measured)
        finally:
            state = scope.get("state", {})
            tokens_in, tokens_out = state.get(USAGE, (0, 0))
            exchange = Exchange(
                method=scope["method"],
                path=scope["path"],
                status=status,
                latency_s=time.perf_counter() - started,
                model=state.get(MODEL) or model_in_path(scope["path"]),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                request_bytes=sizes[0],
                request_sha256=request_hash.hexdigest() if sizes[0] else None,
                response_bytes=sizes[1],
                response_sha256=response_hash.hexdigest() if sizes[1] else None,
                prompt=prompt.decode("utf-8", "replace") if keep_prompt else None,
                served_route=served.get(b"x-strata-route"),
                served_version=served.get(b"x-strata-version"),
            )
            await self.control.finish(principal, exchange)


_SERVED_HEADERS = (b"x-strata-route", b"x-strata-version")


async def _send_error(send: Send, error: StrataError) -> None:
    body = error_body(error.message, error.error_type, error.param, error.code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
