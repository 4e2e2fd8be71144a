"""The JSON response every Strata route answers with: orjson bytes, headers built once as raw pairs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response

_JSON = (b"content-type", b"application/json")


class JSONBytes(Response):
    """A whole JSON body. Starlette's Response would re-derive its headers through a mutable
    mapping; this builds the raw list directly (the gateway sends ``raw_headers`` and ``body``)."""

    media_type = "application/json"

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        headers: dict[str, str] | None = None,
        raw_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """``raw_headers``: more headers already encoded (lower-case names), e.g. ``Served.raw_headers``."""
        self.body = body
        self.status_code = status
        self.background: BackgroundTask | None = None
        raw = [_JSON, (b"content-length", str(len(body)).encode()), *raw_headers]
        if headers:
            raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers = raw


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(dumps(payload), status, headers)


def dumps(payload: object, option: int = 0) -> bytes:
    """``payload`` as JSON bytes: orjson, or the standard library for an integer beyond 64 bits, which
    orjson refuses but JSON allows (a client's job input or a model's output may well hold one).
    Raises TypeError or ValueError for what is not JSON at all (a set, an object)."""
    try:
        return orjson.dumps(payload, option=option)
    except TypeError:
        sort_keys = bool(option & orjson.OPT_SORT_KEYS)
        text = json.dumps(_plain(payload), ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        return text.encode()


def _plain(value: Any) -> Any:
    """JSON types only, non-finite floats as null (as orjson writes them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    return value
