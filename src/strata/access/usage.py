"""Usage: what requests cost, aggregated per tenant, key, model and minute and written in bulk; and the
totals budgets and /v1/usage read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, literal_column, select

from strata.access.tables import UsageRecord
from strata.spec.models import PriceSpec
from strata.store import Database


@dataclass(frozen=True, slots=True)
class UsageKey:
    """What usage is aggregated by: one row per tenant, key, model, minute and prompt template."""

    tenant: str
    key_id: str | None
    model: str
    minute: int  # unix seconds at the start of the minute
    prompt: str | None = None  # the prompt template's id@version, if one built the prompts


def cost_of(price: PriceSpec | None, tokens_in: int, tokens_out: int, compute_s: float) -> float:
    if price is None:
        return 0.0
    return (
        tokens_in / 1000 * price.per_1k_input_tokens
        + tokens_out / 1000 * price.per_1k_output_tokens
        + compute_s * price.per_compute_second
    )


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, start: datetime) -> datetime:
    """The start of the period after the one that starts at ``start``."""
    if period == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


async def write(database: Database, rows: dict[UsageKey, Totals]) -> None:
    """One row per aggregate; a minute flushed twice (or by two gateways) is two rows, summed on read."""
    if not rows:
        return
    values = [
        {"at": datetime.fromtimestamp(k.minute, UTC), "tenant": k.tenant, "key_id": k.key_id, "model": k.model,
         "prompt": k.prompt, "requests": t.requests, "tokens_in": t.tokens_in, "tokens_out": t.tokens_out,
         "compute_s": t.compute_s, "cost": t.cost, "cached": t.cached}
        for k, t in rows.items()
    ]  # fmt: skip
    async with database.session() as session:
        await session.execute(insert(UsageRecord), values)  # one executemany, no ORM objects


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    compute_s: float = 0.0
    cost: float = 0.0
    cached: int = 0  # of ``requests``, those answered from the response cache (not billed)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.compute_s + other.compute_s,
            self.cost + other.cost,
            self.cached + other.cached,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "input_tokens": self.tokens_in,
            "output_tokens": self.tokens_out,
            "compute_seconds": round(self.compute_s, 6),
            "cost": round(self.cost, 9),
            "cached_requests": self.cached,
        }


async def totals(
    database: Database, since: datetime, *, tenant: str | None = None, by_model: bool = False
) -> dict[tuple[str, str], Totals]:
    """Totals since ``since`` keyed by (tenant, model) - model is "*" unless ``by_model``."""
    model_column = UsageRecord.model if by_model else literal_column("'*'")
    query = select(
        UsageRecord.tenant,
        model_column,
        func.sum(UsageRecord.requests),
        func.sum(UsageRecord.tokens_in),
        func.sum(UsageRecord.tokens_out),
        func.sum(UsageRecord.compute_s),
        func.sum(UsageRecord.cost),
        func.sum(UsageRecord.cached),
    ).where(UsageRecord.at >= since)
    if tenant is not None:
        query = query.where(UsageRecord.tenant == tenant)
    query = query.group_by(UsageRecord.tenant, UsageRecord.model) if by_model else query.group_by(UsageRecord.tenant)
    async with database.session() as session:
        result = await session.execute(query)
        return {
            (row[0], row[1] if by_model else "*"): Totals(
                int(row[2] or 0),
                int(row[3] or 0),
                int(row[4] or 0),
                float(row[5] or 0),
                float(row[6] or 0),
                int(row[7] or 0),
            )
            for row in result.all()
        }


async def prompt_totals(database: Database, since: datetime, *, tenant: str | None) -> dict[tuple[str, str], Totals]:
    """Totals since ``since`` of the requests a prompt template built, keyed by (tenant, id@version)."""
    query = (
        select(UsageRecord.tenant, UsageRecord.prompt, func.sum(UsageRecord.requests), func.sum(UsageRecord.tokens_in),
               func.sum(UsageRecord.tokens_out), func.sum(UsageRecord.compute_s), func.sum(UsageRecord.cost))
        .where(UsageRecord.at >= since, UsageRecord.prompt.is_not(None))
        .group_by(UsageRecord.tenant, UsageRecord.prompt)
    )  # fmt: skip
    if tenant is not None:
        query = query.where(UsageRecord.tenant == tenant)
    async with database.session() as session:
        rows = (await session.execute(query)).all()
    return {
        (row[0], str(row[1])): Totals(int(row[2] or 0), int(row[3] or 0), int(row[4] or 0), float(row[5] or 0),
                                 float(row[6] or 0))
        for row in rows
    }  # fmt: skip
