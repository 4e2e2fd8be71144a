"""Prometheus metrics of governance state, read from their owners at scrape time (no request-path cost):
each tenant's share of its budget, and the audit chain's last verdict. The shipped alert rules
(deploy/prometheus/strata-alerts.yaml) fire on them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class BudgetShare:
    tenant: str
    used: dict[str, float]  # limit ("tokens", "cost") -> share used this period (1.0 = spent)
    alert_fraction: float  # the share at which the tenant's soft alert fires


@dataclass(frozen=True, slots=True)
class ChainState:
    ok: bool
    rows: int
    verified_at: float  # unix time


class GovernanceCollector(Collector):
    def __init__(
        self,
        budgets: Callable[[], Iterable[BudgetShare]],
        chain: Callable[[], ChainState | None],
        chain_failures: Callable[[], int],
    ) -> None:
        self._budgets = budgets
        self._chain = chain
        self._chain_failures = chain_failures

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "strata_budget_used_ratio",
            "Share of a tenant's budget used this period (1 = spent)",
            labels=["tenant", "limit"],
        )
        alert = GaugeMetricFamily(
            "strata_budget_alert_ratio", "Share of its budget at which a tenant's soft alert fires", labels=["tenant"]
        )
        for share in self._budgets():
            alert.add_metric([share.tenant], share.alert_fraction)
            for limit, value in share.used.items():
                used.add_metric([share.tenant, limit], value)
        yield used
        yield alert
        state = self._chain()
        if state is not None:  # before the first walk nothing is known: no sample, rather than a false 0
            yield GaugeMetricFamily("strata_audit_chain_ok", "1 when the audit chain verified, 0 when broken",
                                    value=1.0 if state.ok else 0.0)  # fmt: skip
            yield GaugeMetricFamily("strata_audit_chain_rows", "Rows in the audit chain at its last walk",
                                    value=state.rows)  # fmt: skip
            yield GaugeMetricFamily("strata_audit_chain_verified_timestamp_seconds",
                                    "Unix time of the audit chain's last walk", value=state.verified_at)  # fmt: skip
        failures = CounterMetricFamily(
            "strata_audit_chain_verify_failures", "Walks of the audit chain that could not run (database errors)"
        )
        failures.add_metric([], self._chain_failures())
        yield failures


def register_governance_metrics(
    registry: CollectorRegistry,
    budgets: Callable[[], Iterable[BudgetShare]],
    chain: Callable[[], ChainState | None],
    chain_failures: Callable[[], int],
) -> None:
    registry.register(GovernanceCollector(budgets, chain, chain_failures))
