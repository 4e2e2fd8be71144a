"""Budgets' standing and the audit chain's verdict, as /metrics exports them at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from strata.access.quotas import Budgets
from strata.access.usage import Totals
from strata.observability.access_metrics import BudgetShare, ChainState, register_governance_metrics
from strata.spec import BudgetSpec
from strata.testing import MetricSamples


def test_standing_lists_named_tenants_and_those_seen_spending() -> None:
    budgets = Budgets(
        [
            BudgetSpec(tenant="acme", max_tokens=100, alert_fraction=0.5),
            BudgetSpec(tenant="*", max_cost=2.0),
        ]
    )
    budgets.add("acme", Totals(1, 30, 10, 0.5, 0.0), datetime.now(UTC))
    budgets.add("walk-in", Totals(1, 1, 1, 0.1, 0.5), datetime.now(UTC))
    standing = {s.tenant: s for s in budgets.standing()}
    assert set(standing) == {"acme", "walk-in"}  # '*' is not a tenant; a tenant it covers shows once seen
    assert standing["acme"].used() == {"tokens": 0.4}
    assert standing["walk-in"].used() == {"cost": 0.25}
    assert Budgets([BudgetSpec(tenant="idle", max_tokens=10)]).standing()[0].used() == {"tokens": 0.0}


def test_the_collector_exports_shares_and_the_chain() -> None:
    registry = CollectorRegistry()
    chain: list[ChainState | None] = [None]
    shares = [BudgetShare("acme", {"tokens": 0.4, "cost": 1.0}, 0.5)]
    register_governance_metrics(registry, lambda: shares, lambda: chain[0], lambda: 2)
    before = MetricSamples(generate_latest(registry).decode())
    assert before.value("strata_budget_used_ratio", tenant="acme", limit="cost") == 1.0
    assert before.value("strata_budget_alert_ratio", tenant="acme") == 0.5
    assert before.value("strata_audit_chain_verify_failures_total") == 2.0
    assert not before.has("strata_audit_chain_ok")  # unknown before the first walk: no false alarm
    chain[0] = ChainState(ok=False, rows=12, verified_at=1_700_000_000.0)
    after = MetricSamples(generate_latest(registry).decode())
    assert after.has("strata_audit_chain_ok")
    assert after.value("strata_audit_chain_ok") == 0.0
    assert after.value("strata_audit_chain_rows") == 12.0
    assert after.value("strata_audit_chain_verified_timestamp_seconds") == 1_700_000_000.0
