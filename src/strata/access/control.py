"""The access layer's facade: authenticate, authorise, limit and meter each request; one per gateway."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from strata.access.audit import AuditEvent
from strata.access.authenticator import Authenticator
from strata.access.jwt import JWTVerifier
from strata.access.keystore import KeyStore
from strata.access.policy import model_in_path, required_scope
from strata.access.principal import ANONYMOUS, Principal
from strata.access.quotas import Budgets
from strata.access.ratelimit import RateLimiter, limit_storage
from strata.access.recorder import Recorder
from strata.access.usage import Totals, Usage
from strata.errors import ModelNotFound, PermissionDenied
from strata.spec import AppSpec
from strata.store import Database

ADMIN_KEY_ENV = "STRATA_ADMIN_KEY"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One finished request as the access layer records it."""

    method: str
    path: str
    status: int
    latency_s: float
    model: str | None
    tokens_in: int
    tokens_out: int
    request_bytes: int
    request_sha256: str | None
    response_bytes: int
    response_sha256: str | None
    prompt: str | None = None  # kept only where the tenant's policy allows
    served_route: str | None = None  # the route and version that answered (a fallback or canary may differ)
    served_version: str | None = None

    def model_version(self) -> str | None:
        """``route@version`` as served, else the model the request named."""
        if self.served_route is not None and self.served_version is not None:
            return f"{self.served_route}@{self.served_version}"
        return self.model


class AccessControl:
    def __init__(self, spec: AppSpec, database: Database) -> None:
        access = spec.access
        self.spec = access
        self.enabled = access.enabled
        self.database = database
        self.keys = KeyStore(database)
        self.jwt = JWTVerifier(access.jwt) if access.jwt is not None else None
        self.authenticator = Authenticator(
            self.keys,
            jwt=self.jwt,
            cache_ttl_s=access.key_cache_ttl_s,
            poll_interval_s=access.revocation_poll_ms / 1000,
            strict=access.revocation == "strict",
        )
        storage = limit_storage(spec.store.redis_url, f"strata:{access.rate_limit_namespace}")
        self.limiter = RateLimiter(storage, access.per_key, access.per_tenant, access.rate_limit_strategy)
        self.budgets = Budgets(access.budgets)
        self.recorder = Recorder(database, after_flush=self._after_flush)
        # What priced the work: the deployment behind the version that served, else the route's first version.
        self.deployment_of = {f"{r.name}@{v.name}": v.deployment for r in spec.routes for v in r.traffic_versions()} | {
            r.name: r.traffic_versions()[0].deployment for r in spec.routes
        }
        self.prices = {p.deployment: p for p in access.prices}

    async def start(self) -> str | None:
        """Start the background work; returns a freshly generated admin key to show once, if one was made."""
        admin_key = os.environ.get(ADMIN_KEY_ENV) or None
        created = await self.keys.bootstrap(admin_key)
        if created is not None:
            self.audit(AuditEvent("admin", "keys.bootstrap", 201, tenant="admin", actor="strata"))
        await self.authenticator.start()
        if self.jwt is not None:
            await self.jwt.start()
        self.recorder.start()
        await self.budgets.refresh(self.database, {})
        return created if admin_key is None else None

    async def stop(self) -> None:
        await self.authenticator.stop()
        await self.recorder.stop()
        await self.limiter.close()

    async def authenticate(self, authorization: str | None) -> Principal:
        """Who is calling (the hot path's first half): a cached key lookup or a JWT check."""
        if not self.enabled:
            return ANONYMOUS
        return await self.authenticator.authenticate(authorization)

    async def authorize(self, principal: Principal, method: str, path: str) -> None:
        """May they use this path, and have they budget and rate left (the second half)."""
        if not self.enabled:
            return
        scope = required_scope(path)
        if scope is not None and not principal.has_scope(scope):
            raise PermissionDenied(f"This key lacks the '{scope}' scope needed for {method} {path}.")
        model = model_in_path(path)
        if model is not None and not principal.allows_model(model):
            raise ModelNotFound(model)
        if scope == "infer":
            self.budgets.check(principal.tenant)
        if self.limiter.active and scope != "admin":  # admins must be able to act while tenants are throttled
            await self.limiter.admit(principal)

    async def admit(self, method: str, path: str, authorization: str | None) -> Principal:
        """Both halves: what each request goes through before any handler runs."""
        principal = await self.authenticate(authorization)
        await self.authorize(principal, method, path)
        return principal

    def audit(self, event: AuditEvent) -> None:
        self.recorder.audit(event)

    async def finish(self, principal: Principal, exchange: Exchange) -> None:
        """Record usage, charge tokens and write the audit row for an inference request."""
        now = datetime.now(UTC)
        tokens = exchange.tokens_in + exchange.tokens_out
        if self.enabled and tokens and self.limiter.active:
            await self.limiter.charge_tokens(principal, tokens)
        if exchange.model is not None and exchange.status < 400:
            served = exchange.model_version() or exchange.model
            deployment = self.deployment_of.get(served, exchange.model)
            record = Usage(
                principal.tenant,
                principal.key_id,
                exchange.model,
                deployment,
                exchange.tokens_in,
                exchange.tokens_out,
                exchange.latency_s,
                now,
            )
            cost = record.cost(self.prices.get(deployment))
            self.recorder.usage(record, cost)
            alert = self.budgets.add(
                principal.tenant, Totals(1, record.tokens_in, record.tokens_out, record.compute_s, cost), now
            )
            if alert is not None:
                self.audit(
                    AuditEvent(
                        "alert", "budget.soft_limit", 200, principal.tenant, principal.key_id, {"message": alert}
                    )
                )
        if self.spec.audit_inference:
            self.audit(_inference_event(principal, exchange, self.deployment_of, now))

    async def _after_flush(self, written: dict[str, Totals]) -> None:
        if self.budgets.by_tenant:
            await self.budgets.refresh(self.database, written)

    def stores_prompts(self, tenant: str) -> bool:
        budget = self.budgets.budget_for(tenant)
        return budget is not None and budget.store_prompts


def _inference_event(
    principal: Principal, exchange: Exchange, deployment_of: dict[str, str], now: datetime
) -> AuditEvent:
    detail: dict[str, object] = {
        "latency_ms": round(exchange.latency_s * 1000, 3),
        "request_bytes": exchange.request_bytes,
        "request_sha256": exchange.request_sha256,
        "response_bytes": exchange.response_bytes,
        "response_sha256": exchange.response_sha256,
        "tokens_in": exchange.tokens_in,
        "tokens_out": exchange.tokens_out,
    }
    if exchange.model is not None:
        served = exchange.model_version()
        detail["model"] = (
            served if served != exchange.model else f"{exchange.model}@{deployment_of.get(exchange.model)}"
        )
    if exchange.prompt is not None:
        detail["prompt"] = exchange.prompt
    return AuditEvent(
        "inference",
        f"{exchange.method} {exchange.path}",
        exchange.status,
        principal.tenant,
        principal.key_id,
        detail,
        now,
    )
