"""Which scope each path needs; the one table every route is checked against."""

from __future__ import annotations

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_JOBS_PREFIXES = ("/v1/jobs", "/v1/files", "/v1/batches", "/v1/pipelines")


def required_scope(path: str) -> str | None:
    """The scope ``path`` needs: None for open paths and ``/v1/usage``, which any valid key may read.
    Anything not listed (the docs, unknown paths) needs ``admin``: new routes are closed until named."""
    if path.startswith("/v1/admin"):
        return "admin"
    if path.startswith(_JOBS_PREFIXES):
        return "jobs"
    if path == "/v1/usage":
        return None
    if path.startswith("/v1/"):
        return "infer"
    return "admin"


def model_in_path(path: str) -> str | None:
    """The model a ``/v1/models/{model}`` or ``/v1/models/{model}/predict`` path names."""
    if not path.startswith("/v1/models/"):
        return None
    rest = path[len("/v1/models/") :]
    return rest.removesuffix("/predict") or None
