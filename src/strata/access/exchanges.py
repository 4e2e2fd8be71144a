"""Stored exchanges: what a tenant's data policy keeps of its inference requests, encrypted at rest.

On the event loop a kept request costs one dictionary lookup (its tenant's level, when the request
starts) and, when it ends, an append to the recorder's bounded buffer. The rows are sealed (AES-GCM,
see keyring.py) and written on the database's own thread, in the recorder's batches; a full buffer
drops rows and counts them (``strata_exchanges_dropped_total``), it never blocks a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import DateTime, Integer, LargeBinary, String, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from strata.access.keyring import KeyRing, SealedDataError
from strata.spec.protected import DataPolicySpec, ProtectedDataSpec, StoreLevel
from strata.store import Base, Database


class StoredExchange(Base):
    __tablename__ = "protected_exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(256))  # "POST /v1/chat/completions"
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    # Content (policy 'full' only): sealed JSON {"prompt", "output"} and the id of the key that sealed it.
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


TABLE = StoredExchange.__table__.c.id.table  # the Table behind the ORM class (Core statements)


@dataclass(frozen=True, slots=True)
class ExchangeEntry:
    """One kept request while it waits to be written (built on the loop from its finished record)."""

    received_at: float  # unix time
    tenant: str
    actor: str | None
    action: str
    model: str | None
    status: int
    request_sha256: str | None
    response_sha256: str | None
    tokens_in: int
    tokens_out: int
    prompt: str | None  # None unless the policy is 'full'
    output: str | None


class DataPolicies:
    """Each tenant's policy, answered from a dict (the request path's one lookup)."""

    def __init__(self, spec: ProtectedDataSpec) -> None:
        self.spec = spec
        self.by_tenant = {p.tenant: p for p in spec.policies if p.tenant != "*"}
        self.default = next((p for p in spec.policies if p.tenant == "*"), None)
        self.active = any(p.store_prompts != "none" for p in spec.policies)

    def policy_for(self, tenant: str) -> DataPolicySpec | None:
        return self.by_tenant.get(tenant, self.default)

    def level(self, tenant: str) -> StoreLevel:
        policy = self.by_tenant.get(tenant, self.default)
        return "none" if policy is None else policy.store_prompts


def associated_data(tenant: str, request_sha256: str | None) -> bytes:
    """What a ciphertext is bound to: its row's tenant and request hash."""
    return f"{tenant}|{request_sha256 or ''}".encode()


async def write(database: Database, ring: KeyRing | None, entries: Sequence[ExchangeEntry]) -> None:
    """Seal and insert ``entries`` in one statement (runs on the writer thread)."""
    if not entries:
        return
    rows = []
    for entry in entries:
        key_id, sealed = None, None
        if entry.prompt is not None or entry.output is not None:
            if ring is None:  # the gateway refuses to start so; a guard against silently storing plaintext
                raise RuntimeError("a 'full' data policy without a data key ring")
            content = orjson.dumps({"prompt": entry.prompt, "output": entry.output})
            key_id, sealed = ring.seal(content, associated_data(entry.tenant, entry.request_sha256))
        rows.append(
            {"at": _EPOCH + timedelta(seconds=entry.received_at), "tenant": entry.tenant, "actor": entry.actor,
             "action": entry.action[:256], "model": entry.model, "status": entry.status,
             "request_sha256": entry.request_sha256, "response_sha256": entry.response_sha256,
             "tokens_in": entry.tokens_in, "tokens_out": entry.tokens_out, "key_id": key_id, "sealed": sealed}
        )  # fmt: skip
    async with database.connect() as connection:
        await connection.execute(insert(TABLE), rows)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def describe(row: StoredExchange) -> dict[str, Any]:
    """A row's metadata (no content): what listings show."""
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id, "object": "stored_exchange", "created_at": int(at.timestamp()), "tenant": row.tenant,
        "actor": row.actor, "action": row.action, "model": row.model, "status": row.status,
        "request_sha256": row.request_sha256, "response_sha256": row.response_sha256,
        "tokens_in": row.tokens_in, "tokens_out": row.tokens_out, "key_id": row.key_id,
        "has_content": row.sealed is not None,
    }  # fmt: skip


async def recent(database: Database, *, tenant: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(StoredExchange).order_by(StoredExchange.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(StoredExchange.tenant == tenant)
    async with database.session() as session:
        return [describe(row) for row in (await session.scalars(query)).all()]


async def read(database: Database, ring: KeyRing | None, exchange_id: int) -> dict[str, Any] | None:
    """One row with its content opened (None: no such row). Raises SealedDataError when no key opens it."""
    async with database.session() as session:
        row = await session.get(StoredExchange, exchange_id)
    if row is None:
        return None
    found = describe(row)
    content: dict[str, Any] = {"prompt": None, "output": None}
    if row.sealed is not None and row.key_id is not None:
        if ring is None:
            raise SealedDataError("the row is encrypted and this gateway has no data keys")
        content = orjson.loads(ring.open(row.key_id, row.sealed, associated_data(row.tenant, row.request_sha256)))
    return {**found, "prompt": content.get("prompt"), "output": content.get("output")}
