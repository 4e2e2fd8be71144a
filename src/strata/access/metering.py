"""What handlers tell the access layer about a request: the model it named and the tokens it used.

Both live in the ASGI scope's state, which the access middleware reads once the response is sent.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request

from strata.errors import ModelNotFound

MODEL = "strata.model"
USAGE = "strata.usage"


def authorize_model(request: Request, model: str) -> None:
    """Refuse a model outside the caller's allow-list as if it did not exist (no existence leak)."""
    state = request.scope.setdefault("state", {})
    principal = state.get("principal")
    if principal is not None and not principal.allows_model(model):
        raise ModelNotFound(model)
    state[MODEL] = model


def note_usage(scope: MutableMapping[str, Any], tokens_in: int, tokens_out: int) -> None:
    scope.setdefault("state", {})[USAGE] = (tokens_in, tokens_out)
