"""The access layer: tenants, API keys, JWT, scopes, rate limits, budgets, usage and the audit trail.

``AccessControl`` is imported on first use (PEP 562): the audit writer process (audit_child.py)
imports this package for the chain alone and must not pay for the whole layer at each start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.principal import ANONYMOUS, Principal

if TYPE_CHECKING:
    from strata.access.control import AccessControl

__all__ = ["ANONYMOUS", "AccessControl", "Principal"]


def __getattr__(name: str) -> Any:
    if name == "AccessControl":
        from strata.access.control import AccessControl

        return AccessControl
    raise AttributeError(f"module 'strata.access' has no attribute {name!r}")
