"""The access layer: tenants, API keys, JWT, scopes, rate limits, budgets, usage and the audit trail."""

from strata.access.control import AccessControl
from strata.principal import ANONYMOUS, Principal

__all__ = ["ANONYMOUS", "AccessControl", "Principal"]
