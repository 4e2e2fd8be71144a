"""A replica's own Prometheus endpoint (a thread beside the Ray actor): on the node's loopback by
default, so only an agent on that node can scrape it; on the node's address only behind a bearer token.

Ray nodes share a network with everything else in the cluster, and the metrics name deployments,
models and traffic: an open port there would hand them to anyone who can reach the node.
"""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

LOOPBACK = "127.0.0.1"

WSGIApp = Any  # a WSGI callable (wsgiref's types are not worth importing for one wrapper)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the replica's process open


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        return


def _with_token(app: WSGIApp, token: str) -> WSGIApp:
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):  # constant time: the token is a secret
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"this endpoint needs 'Authorization: Bearer <token>'\n"]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return guarded


def serve_replica_metrics(
    registry: CollectorRegistry, host: str, port: int, token: str | None
) -> tuple[WSGIServer, str]:
    """Serve ``registry`` on ``host:port`` (0: a free port) in a daemon thread; returns the server and the
    URL Prometheus scrapes. ``token``: every scrape must send it as a bearer token."""
    app = make_wsgi_app(registry)
    if token is not None:
        app = _with_token(app, token)
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, app, server_class, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="replica-metrics", daemon=True).start()
    address = f"[{host}]" if ":" in host else host
    return server, f"http://{address}:{server.server_address[1]}/metrics"
