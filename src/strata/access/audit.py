"""The audit trail: an append-only, hash-chained table, and the check that finds any edited or lost row.

Each row's hash is SHA-256 over the previous row's hash and the row's own canonical JSON, so editing a
row breaks its hash, deleting one breaks the next row's link (or the head, for the last row), and
reordering breaks both. Writers lock the one ``access_audit_head`` row first, which serialises appends
from every gateway on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, update

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
detail dict) is built by ``append`` on the writer thread."""

AuditSource = AuditEvent | InferenceEntry  # what waits to become a row of the chain


def _inference_detail(entry: InferenceEntry) -> dict[str, Any]:
    (_, _, _, _, _, latency_ms, request_bytes, request_sha256, response_bytes, response_sha256, tokens_in, tokens_out,
     model, template, prompt) = entry  # fmt: skip
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
    return detail


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = _EPOCH.replace(tzinfo=None)


def _canonical_at(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (isoformat in C: strftime cost more than the rest of a row)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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
    return _hash_row(prev_hash, seq, _canonical_at(at), kind, tenant, actor, action, status, detail)


def _hash_row(
    prev_hash: str,
    seq: int,
    canonical_at: str,
    kind: str,
    tenant: str | None,
    actor: str | None,
    action: str,
    status: int,
    detail: str,
) -> str:
    body = orjson.dumps([seq, canonical_at, kind, tenant, actor, action, status, detail])
    return hashlib.sha256(prev_hash.encode() + b"|" + body).hexdigest()


async def append(database: Database, events: Sequence[AuditSource]) -> None:
    """Append ``events`` in order, in one transaction (an inference entry becomes its row here: no
    AuditEvent is built for it)."""
    if not events:
        return
    plain = database.plain_sqlite()
    if plain is not None:
        _append_plain(plain, events)
        return
    async with database.connect() as connection:  # Core, no ORM session: this runs for every batch of rows
        # Taking the row lock before reading the head: concurrent writers queue here, never fork the chain.
        await connection.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=HEAD.c.seq))
        head_seq, head_hash = (await connection.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1))).one()
        values, seq, prev = _chained_rows(events, head_seq, head_hash, sqlite=database.dialect == "sqlite")
        # The driver's own executemany: SQLAlchemy's per-row parameter processing cost more than
        # building, hashing and writing the row together (the trail gets a row per request).
        await connection.exec_driver_sql(_insert_sql(connection.dialect.paramstyle), values)
        await connection.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=seq, hash=prev))


def _append_plain(connection: sqlite3.Connection, events: Sequence[AuditSource]) -> None:
    """``append`` on the database thread's plain sqlite3 connection: the same statements, without
    SQLAlchemy's async layer and aiosqlite's thread hop per statement."""
    head = AuditHead.__tablename__
    connection.execute("BEGIN IMMEDIATE")  # the write lock first: concurrent writers queue, never fork the chain
    try:
        head_seq, head_hash = connection.execute(f"SELECT seq, hash FROM {head} WHERE id = 1").fetchone()
        values, seq, prev = _chained_rows(events, head_seq, head_hash, sqlite=True)
        connection.executemany(_insert_sql("qmark"), values)
        connection.execute(f"UPDATE {head} SET seq = ?, hash = ? WHERE id = 1", (seq, prev))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _chained_rows(
    events: Sequence[AuditSource], seq: int, prev: str, *, sqlite: bool
) -> tuple[list[tuple[Any, ...]], int, str]:
    """The rows for ``events`` after the head (``seq``, ``prev``), each hashed over its predecessor;
    returns them with the new head."""
    values = []
    for event in events:
        seq += 1
        if isinstance(event, AuditEvent):
            kind, action, status, tenant, actor = event.kind, event.action, event.status, event.tenant, event.actor
            naive, fields = event.at.astimezone(UTC).replace(tzinfo=None), event.detail
        else:
            kind, (_, action, status, tenant, actor) = "inference", event[:5]
            naive, fields = _EPOCH_NAIVE + timedelta(seconds=event[0]), _inference_detail(event)
        detail = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()
        # One isoformat per row: the stored SQLite text and the hashed canonical form are the same digits.
        text_at = naive.isoformat(sep=" ", timespec="microseconds")
        canonical_at = f"{text_at[:10]}T{text_at[11:]}Z"
        digest = _hash_row(prev, seq, canonical_at, kind, tenant, actor, action, status, detail)
        stored_at = text_at if sqlite else naive.replace(tzinfo=UTC)
        values.append((seq, stored_at, kind, tenant, actor, action, status, detail, prev, digest))
        prev = digest
    return values, seq, prev


HEAD = AuditHead.__table__.c.id.table  # the Table behind the ORM class (Core statements)
_COLUMNS = ("seq", "at", "kind", "tenant", "actor", "action", "status", "detail", "prev_hash", "hash")


def _insert_sql(paramstyle: str) -> str:
    marks = [f"${n}" if paramstyle == "numeric_dollar" else "?" for n in range(1, len(_COLUMNS) + 1)]
    if paramstyle not in ("numeric_dollar", "qmark"):
        raise ValueError(f"unsupported driver paramstyle {paramstyle!r}")
    return f"INSERT INTO access_audit ({', '.join(_COLUMNS)}) VALUES ({', '.join(marks)})"


@dataclass(frozen=True, slots=True)
class ChainPoint:
    """A row of the chain a walk found sound: its sequence number and hash (seq 0: the genesis)."""

    seq: int
    hash: str


START = ChainPoint(0, GENESIS)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int  # rows this walk checked
    problems: list[str]
    end: ChainPoint = START  # the last row checked: where the next walk can start (when ok)


async def verify(database: Database, *, since: ChainPoint = START, batch: int = 5000, pause: float = 0.0) -> Verdict:
    """Walk the chain from ``since`` (by default the genesis: the whole chain); report every row whose
    hash, link or sequence number does not hold.

    From a point an earlier walk found sound, only the rows after it are walked, and that point's row
    must still hold the same hash (a cheap walk for a long chain; the rows before it were checked then).
    ``pause``: after each batch, sleep that many times the batch's own walking time, so that a long
    walk takes at most 1 / (1 + pause) of the thread it runs on (the gateway's database thread).

    The walk covers the chain as its head stood when the walk began: writers go on appending while it
    runs (this gateway's recorder, other gateways), and a row and the head that counts it commit
    together, so every row up to the head read first is already there. Rows past that head are
    checked by the next walk; rows past the head as it stands at the end were never counted by it."""
    problems: list[str] = []
    prev, expected_seq, rows = since.hash, since.seq + 1, 0
    async with database.session() as session:
        head = (await session.scalars(select(AuditHead).where(AuditHead.id == 1))).one()
        head_seq, head_hash = head.seq, head.hash
        if since.seq:
            kept = (await session.execute(select(AuditRecord.hash).where(AuditRecord.seq == since.seq))).scalar()
            if kept != since.hash:
                problems.append(f"row {since.seq}: {'gone' if kept is None else 'changed'} since a walk found it sound")
        last = since.seq
        while True:
            started = time.perf_counter()
            query = (
                select(AuditRecord)
                .where(AuditRecord.seq > last, AuditRecord.seq <= head_seq)
                .order_by(AuditRecord.seq)
                .limit(batch)
            )
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
            if pause > 0:
                await asyncio.sleep(pause * (time.perf_counter() - started))
        if head_seq != last or head_hash != prev:
            problems.append(f"the chain ends at row {last} but its head says row {head_seq} (rows deleted at the end)")
        # The newest row first, then the head: a head read after the row it must count (same commit).
        newest = (await session.execute(select(func.max(AuditRecord.seq)))).scalar() or 0
        head_now = (await session.execute(select(AuditHead.seq).where(AuditHead.id == 1))).scalar_one()
        if newest > head_now:
            problems.append(f"rows {head_now + 1}..{newest} lie past the chain's head (added outside the chain)")
    return Verdict(not problems, rows, problems, ChainPoint(last, prev))


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
