"""The shipped Grafana dashboard and Prometheus alert rules, and what their PromQL reads: every metric
name and, per metric, every label name (selectors, ``by``/``on`` clauses, legends, ``$labels``).
Shared by the unit tests (promtool) and the e2e test that checks them against a live /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ASSETS = Path(str(resources.files("strata") / "assets" / "observability"))
RULES = ASSETS / "prometheus-alerts.yaml"
DASHBOARD = ASSETS / "grafana-dashboard.json"
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series, never on /metrics

_METRIC = re.compile(r"\bstrata_[a-z0-9_]+\b")
_SELECTOR = re.compile(r"\b(strata_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*(?:\$labels\.)?([a-zA-Z_]\w*)\s*\}\}")
_LABEL_VALUES = re.compile(r"label_values\(\s*(strata_[a-z0-9_]+)\s*,\s*(\w+)\s*\)")
_RECORDED = re.compile(r"\bstrata:[a-z0-9_:]+")


@dataclass
class Query:
    where: str  # e.g. "rules: StrataHighErrorRate", "dashboard: Tokens/s"
    expr: str
    legends: list[str] = field(default_factory=list)  # legend formats and annotations naming labels

    def metrics(self) -> set[str]:
        return set(_METRIC.findall(self.expr))

    def selector_labels(self) -> Iterator[tuple[str, str]]:
        """(metric, label) for each label matched inside a metric's braces."""
        for metric, inside in _SELECTOR.findall(self.expr):
            for label in _MATCHER.findall(inside):
                yield metric, label
        for metric, label in _LABEL_VALUES.findall(self.expr):
            yield metric, label

    def grouping_labels(self) -> set[str]:
        """Labels of by/on/... clauses and of legends: each must be on some metric the query reads."""
        labels = {name.strip() for clause in _CLAUSE.findall(self.expr) for name in clause.split(",") if name.strip()}
        for legend in self.legends:
            labels.update(_LEGEND.findall(legend))
        return labels

    def recorded(self) -> set[str]:
        return set(_RECORDED.findall(self.expr))


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rule_queries() -> list[Query]:
    queries = []
    for group in rules()["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            annotations = list(rule.get("annotations", {}).values())
            # Labels an alert keeps are only those its expression leaves: its annotations may name them.
            queries.append(Query(f"rules: {name}", rule["expr"], annotations))
    return queries


def dashboard_queries() -> list[Query]:
    queries = []
    board = dashboard()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append(Query(f"dashboard: {panel['title']}", target["expr"], [target.get("legendFormat", "")]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(Query(f"dashboard variable: {variable['name']}", variable["definition"]))
    return queries


def recorded_names() -> set[str]:
    return {rule["record"] for group in rules()["groups"] for rule in group["rules"] if "record" in rule}
