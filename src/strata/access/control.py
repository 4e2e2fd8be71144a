"""The access layer's facade: authenticate, authorise, limit and meter each request; one per gateway."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from strata.access.admin_key import NO_HANDOVER, Handover
from strata.access.audit import AuditEvent, InferenceEntry
from strata.access.audit_watch import AuditWatch
from strata.access.authenticator import Authenticator
from strata.access.chain_writer import chain_writer_for
from strata.access.exchanges import DataPolicies, ExchangeEntry
from strata.access.jwt import JWTVerifier
from strata.access.keyring import DataKeyError, KeyRing, keyring_from_env
from strata.access.keystore import KeyStore
from strata.access.quotas import Budgets
from strata.access.ratelimit import RateLimiter, limit_storage
from strata.access.recorder import Recorder
from strata.access.retention import RetentionPurge
from strata.access.usage import Totals, cost_of
from strata.errors import ModelNotFound, PermissionDenied, StrataError
from strata.principal import ANONYMOUS, Principal
from strata.record import RequestRecord
from strata.spec import AppSpec
from strata.spec.protected import ProtectedDataSpec, StoreLevel
from strata.store import Database

log = logging.getLogger(__name__)

ADMIN_KEY_ENV = "STRATA_ADMIN_KEY"


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
        self.data = DataPolicies(spec.protected_data)
        self.ring = data_keyring(spec.protected_data)  # read once, here: bad keys stop the gateway before it serves
        self.recorder = Recorder(
            database, after_flush=self._after_flush, ring=self.ring,
            max_exchange_buffer=spec.protected_data.max_buffer_rows,
            chain=chain_writer_for(database, access.audit_writer),
        )  # fmt: skip
        self.retention = RetentionPurge(database, self.data, interval_s=spec.protected_data.purge_interval_s)
        self.audit_watch = AuditWatch(database, self.recorder)  # started by the gateway's lifespan
        # What priced the work: the deployment behind the version that served, else the route's first version.
        self.deployment_of = {f"{r.name}@{v.name}": v.deployment for r in spec.routes for v in r.traffic_versions()} | {
            r.name: r.traffic_versions()[0].deployment for r in spec.routes
        }
        self.prices = {p.deployment: p for p in access.prices}

    async def start(self, handover: Handover | None = None) -> None:
        """Start the background work. Without an admin key in the database, make one: STRATA_ADMIN_KEY's,
        else a generated one given to ``handover`` (see access/admin_key.py); with neither, none."""
        admin_key = os.environ.get(ADMIN_KEY_ENV) or None
        if admin_key is not None or handover is not None:
            created = await self.keys.bootstrap(admin_key)
            if created is not None:
                self.audit(AuditEvent("admin", "keys.bootstrap", 201, tenant="admin", actor="strata"))
                if admin_key is None and handover is not None:
                    log.warning("a new admin key was generated and %s", handover(created))
        elif not await self.keys.has_admin():
            log.warning(NO_HANDOVER)
        await self.authenticator.start()
        if self.jwt is not None:
            await self.jwt.start()
        self.recorder.start()
        await self.budgets.refresh(self.database, {})

    async def stop(self) -> None:
        await self.authenticator.stop()
        await self.recorder.stop()
        await self.limiter.close()

    async def authenticate(self, authorization: str | None) -> Principal:
        """Who is calling (the hot path's first half): a cached key lookup or a JWT check."""
        if not self.enabled:
            return ANONYMOUS
        return await self.authenticator.authenticate(authorization)

    async def authorize(self, principal: Principal, scope: str, method: str, path: str, model: str | None) -> None:
        """May they use this route (it needs ``scope``; ``any`` takes any valid key; ``model`` is the
        model its path names), and have they budget and rate left (the second half)."""
        if not self.enabled:
            return
        if scope != "any" and not principal.has_scope(scope):
            raise PermissionDenied(f"This key lacks the '{scope}' scope needed for {method} {path}.")
        if model is not None and not principal.allows_model(model):
            raise ModelNotFound(model)
        if scope == "infer":
            self.budgets.check(principal.tenant)
        if self.limiter.active and scope != "admin":  # admins must be able to act while tenants are throttled
            await self.limiter.admit(principal)

    def deny(self, record: RequestRecord, error: StrataError) -> None:
        """Audit a refused request (who, if known, and why): counted, one row per kind per flush."""
        caller = record.caller if record.caller is not ANONYMOUS else None
        tenant, actor = (None, None) if caller is None else (caller.tenant, caller.key_id)
        self.recorder.deny(f"{record.method} {record.path}", error.status, error.code, tenant, actor)

    def audit(self, event: AuditEvent) -> None:
        self.recorder.audit(event)

    async def finish(self, record: RequestRecord) -> None:
        """Charge tokens, add usage and budget, and queue the audit row of a finished inference request.
        On the loop this is a few dictionary updates: rows are built and written off it, in bulk."""
        principal = record.caller
        tokens = record.tokens_in + record.tokens_out
        if self.enabled and tokens and self.limiter.active:
            await self.limiter.charge_tokens(principal, tokens)
        if record.model is not None and record.status < 400:
            deployment = record.deployment or self.deployment_of.get(record.served_as() or record.model, record.model)
            compute_s = record.billed_s
            cost = cost_of(self.prices.get(deployment), record.tokens_in, record.tokens_out, compute_s)
            record.cost = cost
            self.recorder.usage(
                principal.tenant, principal.key_id, record.model, record.received_at,
                (record.tokens_in, record.tokens_out, compute_s, cost), record.template,
                cached=record.cache is not None,
            )  # fmt: skip
            if self.budgets.by_tenant:
                used = Totals(1, record.tokens_in, record.tokens_out, compute_s, cost)
                alert = self.budgets.add(principal.tenant, used, datetime.now(UTC))
                if alert is not None:
                    self.audit(
                        AuditEvent("alert", "budget.soft_limit", 200, principal.tenant, principal.key_id,
                                   {"message": alert})
                    )  # fmt: skip
        if self.spec.audit_inference:
            self.recorder.audit(self.inference_entry(record))
        if record.data_level is not None:
            self.recorder.keep(self.exchange_entry(record))

    async def _after_flush(self, written: dict[str, Totals]) -> None:
        if self.budgets.by_tenant:
            await self.budgets.refresh(self.database, written)

    def stores_prompts(self, tenant: str) -> bool:
        budget = self.budgets.budget_for(tenant)
        return budget is not None and budget.store_prompts

    def data_level(self, tenant: str) -> StoreLevel:
        """What the tenant's data policy keeps of its requests (a dict lookup: it runs per request)."""
        return self.data.level(tenant) if self.data.active else "none"

    def exchange_entry(self, record: RequestRecord) -> ExchangeEntry:
        principal = record.caller
        return ExchangeEntry(
            record.received_at, principal.tenant, principal.key_id, f"{record.method} {record.path}",
            record.served_as(), record.status, record.request_sha256, record.response_sha256, record.tokens_in,
            record.tokens_out, record.kept_prompt, record.kept_output,
        )  # fmt: skip

    def inference_entry(self, record: RequestRecord) -> InferenceEntry:
        """The audit trail's entry for a finished request (its row is built on the writer thread)."""
        model = None
        if record.model is not None:
            served = record.served_as()
            model = served if served != record.model else f"{record.model}@{self.deployment_of.get(record.model)}"
        principal = record.caller
        return (
            record.received_at, f"{record.method} {record.path}", record.status, principal.tenant, principal.key_id,
            round(record.latency_s * 1000, 3), record.request_bytes, record.request_sha256, record.response_bytes,
            record.response_sha256, record.tokens_in, record.tokens_out, model, record.template, record.prompt,
        )  # fmt: skip


def data_keyring(spec: ProtectedDataSpec) -> KeyRing | None:
    """The data keys from the environment; a policy that keeps content without them is a startup error."""
    ring = keyring_from_env(os.environ, spec.keys_env, spec.keys_file_env)
    if ring is None and spec.encrypts:
        tenants = ", ".join(p.tenant for p in spec.policies if p.store_prompts == "full")
        raise DataKeyError(
            f"{spec.keys_env} (or {spec.keys_file_env}) is not set, but the data policy of {tenants} keeps prompts "
            f"and outputs, which are stored encrypted: set {spec.keys_env}='id:base64key' "
            "(`strata data new-key` makes one)"
        )
    return ring
