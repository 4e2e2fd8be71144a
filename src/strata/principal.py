"""Who is calling: the object the gateway puts in ``request.state.principal`` for every layer to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

ScopeName = Literal["infer", "jobs", "admin"]
SCOPES: frozenset[str] = frozenset(get_args(ScopeName))


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None  # API key id, or the JWT subject; None only when access control is off
    scopes: frozenset[str]
    models: frozenset[str] | None = None  # None: every model
    via: str = "key"  # key | jwt | anonymous

    def has_scope(self, scope: str) -> bool:
        """``admin`` may do everything."""
        return scope in self.scopes or "admin" in self.scopes

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


# With access control disabled every request acts as this principal, so callers need no special case.
ANONYMOUS = Principal(tenant="default", key_id=None, scopes=frozenset({"admin"}), via="anonymous")


def principal_of(request: Any) -> Principal:
    """The caller the access middleware put on ``request.state``; ANONYMOUS where access is off."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS
