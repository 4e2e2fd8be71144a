"""The access layer's tables: API keys, the key-change counter, usage and the audit chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from strata.store import Base


class ApiKey(Base):
    __tablename__ = "access_api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # SHA-256 of the whole key: the only form the secret is ever stored in.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(32))  # first characters, to recognise a key in listings
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every model
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class KeysVersion(Base):
    """One row whose counter goes up on every key change: gateways poll it to drop stale cache entries."""

    __tablename__ = "access_keys_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class UsageRecord(Base):
    """Usage of one tenant, key and model in one minute (``at`` is the minute's start)."""

    __tablename__ = "access_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str] = mapped_column(String(128))
    # The prompt template (id@version) that built the requests' prompts; None for requests without one.
    prompt: Mapped[str | None] = mapped_column(String(80), nullable=True)
    requests: Mapped[int] = mapped_column(Integer, server_default="1")  # a row aggregates a minute of requests
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    compute_s: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    cached: Mapped[int] = mapped_column(Integer, server_default="0")  # of ``requests``, answered from the cache


class AuditHead(Base):
    """The chain's tip (last sequence number and hash). Writers lock this row, so appends from several
    gateways serialise; a deleted last row shows up as a mismatch with it."""

    __tablename__ = "access_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditRecord(Base):
    __tablename__ = "access_audit"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))  # denial | admin | inference | alert
    tenant: Mapped[str | None] = mapped_column(String(128), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)  # key id or JWT subject
    action: Mapped[str] = mapped_column(String(256))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON: model, sizes, hashes, latency, reason...
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
