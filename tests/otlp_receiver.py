"""A real OTLP/HTTP traces endpoint on loopback: decodes what exporters post with opentelemetry-proto.

Tests point an exporter (Strata's, through the app spec) at ``receiver.url`` and read the spans that
arrived, exactly as a collector would have received them.
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans


class OTLPReceiver:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_error(404)
                    return
                received.requests.append(ExportTraceServiceRequest.FromString(body))
                received.headers.append(dict(self.headers))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads what arrived

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def resource_spans(self) -> list[ResourceSpans]:
        return [spans for request in list(self.requests) for spans in request.resource_spans]

    def spans_of(self, trace_id: int) -> list[object]:
        wanted = trace_id.to_bytes(16, "big")
        return [
            span
            for resource in self.resource_spans()
            for scope in resource.scope_spans
            for span in scope.spans
            if span.trace_id == wanted
        ]

    def wait_for(self, trace_id: int, count: int, timeout_s: float = 15.0) -> list[object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spans = self.spans_of(trace_id)
            if len(spans) >= count:
                return spans
            time.sleep(0.05)
        raise TimeoutError(f"{len(self.spans_of(trace_id))} spans of the trace arrived, expected {count}")

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
