"""The access layer: tenants, API keys, JWT, scopes, rate limits, budgets, usage and the audit trail."""

from strata.access.control import AccessControl
from strata.access.middleware import AccessMiddleware
from strata.access.principal import ANONYMOUS, Principal

__all__ = ["ANONYMOUS", "AccessControl", "AccessMiddleware", "Principal"]
