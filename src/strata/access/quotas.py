"""Per-tenant budgets: tokens and cost per day or month, a soft alert and a hard stop.

Spending is known from the database (every gateway's flushed usage) plus what this gateway has
recorded and not yet flushed; the check itself is a dictionary lookup on the request path.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from strata.access.usage import Totals, period_end, period_start, totals
from strata.errors import QuotaExceeded
from strata.spec.models import BudgetSpec
from strata.store import Database

log = logging.getLogger(__name__)


@dataclass
class _Spent:
    start: datetime
    ends_at: float  # unix time the period ends: the request path compares floats, builds no dates
    flushed: Totals = field(default_factory=Totals)
    pending: Totals = field(default_factory=Totals)
    alerted: bool = False
    # flushed + pending, kept in step by ``settle``: what the request path compares against the limits
    tokens: int = 0
    cost: float = 0.0

    @property
    def total(self) -> Totals:
        return self.flushed.plus(self.pending)

    def settle(self) -> None:
        """Recount ``tokens`` and ``cost`` after ``flushed`` or ``pending`` was replaced."""
        self.tokens = self.flushed.tokens + self.pending.tokens
        self.cost = self.flushed.cost + self.pending.cost


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one tenant stands against its budget this period (what the dashboard and /metrics show)."""

    tenant: str
    budget: BudgetSpec
    spent: Totals

    def used(self) -> dict[str, float]:
        """The share of each limit the tenant has used: ``tokens``, ``cost`` (only the limits it has)."""
        shares = {}
        if self.budget.max_tokens is not None:
            shares["tokens"] = self.spent.tokens / self.budget.max_tokens
        if self.budget.max_cost is not None:
            shares["cost"] = self.spent.cost / self.budget.max_cost
        return shares


class Budgets:
    def __init__(self, budgets: list[BudgetSpec]) -> None:
        self.by_tenant = {b.tenant: b for b in budgets}
        self._spent: dict[str, _Spent] = {}

    def budget_for(self, tenant: str) -> BudgetSpec | None:
        return self.by_tenant.get(tenant) or self.by_tenant.get("*")

    def standing(self) -> list[Standing]:
        """Every tenant with a budget and what it spent this period: those seen spending, and those
        named in the spec that have not spent yet. Read off the request path (dashboard, scrapes)."""
        now = datetime.now(UTC).timestamp()
        seen = {tenant: spent for tenant, spent in self._spent.items() if now < spent.ends_at}
        tenants = sorted(set(seen) | {t for t in self.by_tenant if t != "*"})
        out = []
        for tenant in tenants:
            budget = self.budget_for(tenant)
            if budget is not None:
                spent = seen.get(tenant)
                out.append(Standing(tenant, budget, Totals() if spent is None else spent.total))
        return out

    def check(self, tenant: str) -> None:
        """Raise QuotaExceeded when the tenant's budget for this period is spent."""
        budget = self.budget_for(tenant)
        if budget is None:
            return
        spent = self._spent.get(tenant)
        if spent is None:
            return
        if budget.max_tokens is not None and spent.tokens >= budget.max_tokens:
            raise QuotaExceeded(
                f"You exceeded your current quota: {spent.tokens} of {budget.max_tokens} tokens this {budget.period}."
            )
        if budget.max_cost is not None and spent.cost >= budget.max_cost:
            raise QuotaExceeded(
                f"You exceeded your current quota: cost {spent.cost:.6f} of {budget.max_cost:g} this {budget.period}."
            )

    def add(self, tenant: str, used: Totals, now: datetime) -> str | None:
        """Count ``used`` as pending; returns an alert message the first time a soft threshold is crossed."""
        budget = self.budget_for(tenant)
        if budget is None:
            return None
        spent = self._period(tenant, budget, now)
        spent.pending = spent.pending.plus(used)
        spent.tokens += used.tokens
        spent.cost += used.cost
        return self._alert(tenant, budget, spent)

    def _period(self, tenant: str, budget: BudgetSpec, now: datetime) -> _Spent:
        spent = self._spent.get(tenant)
        if spent is not None and now.timestamp() < spent.ends_at:
            return spent
        start = period_start(budget.period, now)
        if spent is None or spent.start != start:  # a new period starts from zero
            spent = self._spent[tenant] = _Spent(start, period_end(budget.period, start).timestamp())
        return spent

    def _alert(self, tenant: str, budget: BudgetSpec, spent: _Spent) -> str | None:
        if spent.alerted:
            return None
        share = 0.0  # the larger share of a limit used
        if budget.max_tokens is not None:
            share = spent.tokens / budget.max_tokens
        if budget.max_cost is not None:
            share = max(share, spent.cost / budget.max_cost)
        if share < budget.alert_fraction:
            return None
        spent.alerted = True
        message = f"tenant '{tenant}' has used {share:.0%} of its {budget.period} budget"
        log.warning(message)
        return message

    async def refresh(self, database: Database, flushed_pending: dict[str, Totals]) -> None:
        """Reload what every gateway has flushed this period; ``flushed_pending`` is what this one just wrote."""
        now = datetime.now(UTC)
        for tenant, spent in list(self._spent.items()):
            spent.pending = _minus(spent.pending, flushed_pending.get(tenant, Totals()))
            spent.settle()
        periods = {b.period for b in self.by_tenant.values()}
        for period in periods:
            since = period_start(period, now)
            # Read on the database's own thread: this runs after every flush, beside live requests.
            flushed = await database.off_loop(functools.partial(_totals_since, since))
            for (tenant, _), total in flushed.items():
                budget = self.budget_for(tenant)
                if budget is None or budget.period != period:
                    continue
                spent = self._period(tenant, budget, now)
                spent.flushed = total
                spent.settle()
                self._alert(tenant, budget, spent)


def _minus(a: Totals, b: Totals) -> Totals:
    return Totals(
        a.requests - b.requests,
        a.tokens_in - b.tokens_in,
        a.tokens_out - b.tokens_out,
        a.compute_s - b.compute_s,
        a.cost - b.cost,
    )


async def _totals_since(since: datetime, database: Database) -> dict[tuple[str, str], Totals]:
    return await totals(database, since)
