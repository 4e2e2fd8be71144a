"""The JSON response every Strata API (admin, access, jobs) answers with: orjson, no Starlette re-encoding."""

from __future__ import annotations

import orjson
from starlette.responses import Response


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)
