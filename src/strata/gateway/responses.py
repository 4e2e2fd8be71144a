"""The JSON response every Strata route answers with: orjson bytes, headers built once as raw pairs."""

from __future__ import annotations

import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response

_JSON = (b"content-type", b"application/json")


class JSONBytes(Response):
    """A whole JSON body. Starlette's Response would re-derive its headers through a mutable
    mapping; this builds the raw list directly (the gateway sends ``raw_headers`` and ``body``)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status_code = status
        self.background: BackgroundTask | None = None
        raw = [_JSON, (b"content-length", str(len(body)).encode())]
        if headers:
            raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers = raw


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(payload), status, headers)
