"""One request through the gateway's ASGI app, in process, for an RPC.

Each gRPC service answers its RPCs on the REST route that means the same thing, so a gRPC request
has exactly the REST request's credentials (metadata ``authorization``), access checks, limits,
admission, batching and request record; there is no second code path to keep in step.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from typing import Any

import grpc
import orjson

from strata.gateway.asgi import Gateway
from strata.gateway.request_context import DEADLINE_HEADER, MAX_DEADLINE_MS

# HTTP status -> gRPC status, as the gRPC-HTTP mapping documents (and 422/413 as bad arguments).
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class Reply:
    """What the gateway sent back for one in-process request."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    @property
    def status_code(self) -> grpc.StatusCode:
        return STATUS_CODES.get(self.status, grpc.StatusCode.INTERNAL)

    @property
    def error_message(self) -> str:
        """The OpenAI error's message, with the field it names."""
        try:
            error = self.json()["error"]
        except (ValueError, KeyError, TypeError):
            return f"HTTP {self.status}"
        param = f" (param: {error['param']})" if error.get("param") else ""
        return f"{error.get('message', '')}{param}"


_FORWARDED = frozenset({"authorization", "traceparent"})  # a caller's trace continues through gRPC too


def forwarded_headers(context: grpc.aio.ServicerContext, *, deadline: bool = True) -> list[tuple[bytes, bytes]]:
    """The RPC's metadata a request carries: ``authorization``, ``traceparent`` and ``x-strata-*``
    (priority, session), and the RPC's deadline as the request's (not for a stream, whose deadline is
    the whole stream's)."""
    headers = [(b"content-type", b"application/json")]
    for key, value in context.invocation_metadata() or ():
        if key in _FORWARDED or key.startswith("x-strata-"):
            headers.append((key.encode(), value.encode("latin-1") if isinstance(value, str) else value))
    remaining_s = context.time_remaining() if deadline else None
    if remaining_s is not None and 0 < remaining_s * 1000 <= MAX_DEADLINE_MS:
        headers.append((DEADLINE_HEADER.encode(), f"{remaining_s * 1000:.0f}".encode()))
    return headers


async def call_gateway(
    gateway: Gateway,
    headers: Sequence[tuple[bytes, bytes]],
    peer: str,
    method: str,
    path: str,
    body: bytes = b"",
) -> Reply:
    """``method path`` with ``body`` through the whole gateway (see ``forwarded_headers``)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "2", "scheme": "http",
        "method": method, "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())], "client": _peer(peer), "server": None,
    }  # fmt: skip
    reply, done = Reply(), asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the RPC is answered (or cancelled: this task is then cancelled too)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status, reply.headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            reply.body += message.get("body", b"")

    try:
        await gateway(scope, receive, send)
    finally:
        done.set()
    return reply


def _peer(peer: str) -> tuple[str, int] | None:
    # "ipv4:127.0.0.1:5555" -> ("127.0.0.1", 5555)
    kind, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if kind in ("ipv4", "ipv6") and port.isdigit() else None
