"""The audit trail: an append-only, hash-chained table, and the check that finds any edited or lost row.

Each row's hash is SHA-256 over the previous row's hash and the row's own canonical JSON, so editing a
row breaks its hash, deleting one breaks the next row's link (or the head, for the last row), and
reordering breaks both. Writers lock the one ``access_audit_head`` row first, which serialises appends
from every gateway on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update

from strata.access.tables import AuditHead, AuditRecord
from strata.store import Database

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    kind: str  # denial | admin | inference | alert
    action: str  # e.g. "POST /v1/chat/completions", "keys.revoke"
    status: int
    tenant: str | None = None
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


InferenceEntry = tuple[
    float,
    str,
    int,
    str,
    str | None,
    float,
    int,
    str | None,
    int,
    str | None,
    int,
    int,
    str | None,
    str | None,
    str | None,
]
"""An inference request's trail entry while it waits to be written: (received_at, action, status,
tenant, actor, latency_ms, request_bytes, request_sha256, response_bytes, response_sha256, tokens_in,
tokens_out, model, template, prompt). A plain tuple of atoms on purpose: the garbage collector stops
tracking it, so thousands of buffered entries add nothing to each collection; the row (and its
detail dict) is built on the writer thread by ``inference_event``."""


def inference_event(entry: InferenceEntry) -> AuditEvent:
    (at, action, status, tenant, actor, latency_ms, request_bytes, request_sha256, response_bytes, response_sha256,
     tokens_in, tokens_out, model, template, prompt) = entry  # fmt: skip
    detail: dict[str, Any] = {
        "latency_ms": latency_ms,
        "request_bytes": request_bytes,
        "request_sha256": request_sha256,
        "response_bytes": response_bytes,
        "response_sha256": response_sha256,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
    }
    for name, value in (("model", model), ("template", template), ("prompt", prompt)):
        if value is not None:
            detail[name] = value
    return AuditEvent("inference", action, status, tenant, actor, detail, datetime.fromtimestamp(at, UTC))


def _canonical_at(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    kind: str,
    tenant: str | None,
    actor: str | None,
    action: str,
    status: int,
    detail: str,
) -> str:
    body = orjson.dumps([seq, _canonical_at(at), kind, tenant, actor, action, status, detail])
    return hashlib.sha256(prev_hash.encode() + b"|" + body).hexdigest()


async def append(database: Database, events: list[AuditEvent]) -> None:
    """Append ``events`` in order, in one transaction."""
    if not events:
        return
    async with database.session() as session:
        # Taking the row lock before reading the head: concurrent writers queue here, never fork the chain.
        await session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
        head = (await session.scalars(select(AuditHead).where(AuditHead.id == 1))).one()
        seq, prev = head.seq, head.hash
        values = []
        for event in events:
            seq += 1
            detail = orjson.dumps(event.detail, option=orjson.OPT_SORT_KEYS).decode()
            at = event.at.astimezone(UTC)
            digest = row_hash(prev, seq, at, event.kind, event.tenant, event.actor, event.action, event.status, detail)
            values.append(
                {"seq": seq, "at": at, "kind": event.kind, "tenant": event.tenant, "actor": event.actor,
                 "action": event.action, "status": event.status, "detail": detail, "prev_hash": prev, "hash": digest}
            )  # fmt: skip
            prev = digest
        await session.execute(insert(AuditRecord), values)  # one executemany, no ORM objects
        head.seq, head.hash = seq, prev


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    problems: list[str]


async def verify(database: Database, *, batch: int = 5000) -> Verdict:
    """Walk the whole chain; report every row whose hash, link or sequence number does not hold."""
    problems: list[str] = []
    prev, expected_seq, rows = GENESIS, 1, 0
    async with database.session() as session:
        head = (await session.scalars(select(AuditHead).where(AuditHead.id == 1))).one()
        last = 0
        while True:
            query = select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(batch)
            chunk = (await session.scalars(query)).all()
            if not chunk:
                break
            for row in chunk:
                rows += 1
                if row.seq != expected_seq:
                    problems.append(f"rows {expected_seq}..{row.seq - 1} are missing")
                if row.prev_hash != prev:
                    problems.append(f"row {row.seq}: does not link to the row before it")
                digest = row_hash(
                    row.prev_hash, row.seq, row.at, row.kind, row.tenant, row.actor, row.action, row.status, row.detail
                )
                if digest != row.hash:
                    problems.append(f"row {row.seq}: content does not match its hash (edited)")
                prev, expected_seq, last = row.hash, row.seq + 1, row.seq
        if head.seq != last or head.hash != prev:
            problems.append(f"the chain ends at row {last} but its head says row {head.seq} (rows deleted at the end)")
    return Verdict(not problems, rows, problems)


async def recent(database: Database, *, tenant: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)
    if tenant is not None:
        query = query.where(AuditRecord.tenant == tenant)
    async with database.session() as session:
        return [
            {
                "seq": r.seq,
                "at": _canonical_at(r.at),
                "kind": r.kind,
                "tenant": r.tenant,
                "actor": r.actor,
                "action": r.action,
                "status": r.status,
                "detail": orjson.loads(r.detail),
                "hash": r.hash,
            }
            for r in (await session.scalars(query)).all()
        ]
