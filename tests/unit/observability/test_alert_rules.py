"""The shipped alert rules: valid for promtool, firing on the series that should fire them and only
those, and the latency SLO covering exactly the gateway's inference routes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability_assets import DASHBOARD, RULES, rules
from strata.apps import default_app
from strata.gateway.app import create_app
from strata.spec import AppSpec


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool checks the shipped alert rules: `make test` installs it (.ci/system-packages); "
            "by hand: apt-get install -y --no-install-recommends prometheus"
        )
    return path


def test_rules_pass_promtool_check() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def _alert(name: str, at: str) -> dict[str, Any]:
    """``name`` is not firing at ``at``."""
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def _fires(name: str, at: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": labels}]}


# Series as a scrape of one gateway would give them (promtool's expanding notation: start+step x count).
GATEWAY = 'instance="gw:8000", job="strata"'
TARGET = {"instance": "gw:8000", "job": "strata"}
CHAT = 'route="/v1/chat/completions"'
QUEUE_WAIT = f'strata_stage_latency_seconds_bucket{{{GATEWAY}, deployment="chat", stage="queue_wait"'
CASES: list[dict[str, Any]] = [
    {  # 1. Every chat request slower than the SLO: both burn windows fire; admin traffic is not counted.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_request_latency_seconds_bucket{{{GATEWAY}, {CHAT}, le="2.5"}}', "values": "0+0x400"},
            {"series": f"strata_request_latency_seconds_count{{{GATEWAY}, {CHAT}}}", "values": "0+60x400"},
            {
                "series": f'strata_request_latency_seconds_count{{{GATEWAY}, route="/v1/admin/deployments"}}',
                "values": "0+6000x400",
            },
        ],
        "alert_rule_test": [
            _fires("StrataLatencySLOFastBurn", "70m", {}),
            _fires("StrataLatencySLOSlowBurn", "390m", {}),
        ],
    },
    {  # 2. Fast requests: no burn at all.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_request_latency_seconds_bucket{{{GATEWAY}, {CHAT}, le="2.5"}}', "values": "0+60x100"},
            {"series": f"strata_request_latency_seconds_count{{{GATEWAY}, {CHAT}}}", "values": "0+60x100"},
        ],
        "alert_rule_test": [_alert("StrataLatencySLOFastBurn", "90m"), _alert("StrataLatencySLOSlowBurn", "90m")],
    },
    {  # 3. 10% of chat answered 500: the error rate fires for that route; 4xx alone would not.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_requests_total{{{GATEWAY}, {CHAT}, status="200"}}', "values": "0+90x30"},
            {"series": f'strata_requests_total{{{GATEWAY}, {CHAT}, status="500"}}', "values": "0+10x30"},
            {"series": f'strata_request_errors_total{{{GATEWAY}, {CHAT}, code="500"}}', "values": "0+10x30"},
            {
                "series": f'strata_requests_total{{{GATEWAY}, route="/v1/embeddings", status="400"}}',
                "values": "0+50x30",
            },
            {
                "series": f'strata_request_errors_total{{{GATEWAY}, route="/v1/embeddings", code="400"}}',
                "values": "0+50x30",
            },
        ],
        "alert_rule_test": [_fires("StrataHighErrorRate", "20m", {"route": "/v1/chat/completions"})],
    },
    {  # 4. Saturation, restarts, an empty deployment, an open breaker.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_queue_depth{{{GATEWAY}, deployment="chat"}}', "values": "40x20"},
            {"series": f'strata_queue_depth{{{GATEWAY}, deployment="embeddings"}}', "values": "40x5 0 40x14"},
            {"series": f'strata_replica_restarts_total{{{GATEWAY}, deployment="chat"}}', "values": "0x5 1 2 3x10"},
            {"series": f'strata_replicas_ready{{{GATEWAY}, deployment="chat"}}', "values": "0x10"},
            {"series": f'strata_deployment_breaker_open{{{GATEWAY}, deployment="chat"}}', "values": "1x10"},
            {"series": f'{QUEUE_WAIT}, le="1.0"}}', "values": "0+1x20"},
            {"series": f'{QUEUE_WAIT}, le="5.0"}}', "values": "0+100x20"},
            {"series": f'{QUEUE_WAIT}, le="+Inf"}}', "values": "0+100x20"},
        ],
        "alert_rule_test": [
            _fires("StrataQueueBacklog", "15m", {**TARGET, "deployment": "chat"}),
            _fires("StrataReplicaRestarting", "8m", {**TARGET, "deployment": "chat"}),
            _fires("StrataReplicaCrashLooping", "9m", {**TARGET, "deployment": "chat"}),
            _fires("StrataNoReadyReplicas", "5m", {**TARGET, "deployment": "chat"}),
            _fires("StrataBreakerOpen", "8m", {**TARGET, "deployment": "chat"}),
            _fires("StrataQueueWaitHigh", "18m", {"deployment": "chat"}),
        ],
    },
    {  # 5. Budgets seen by two gateways: a soft alert at the tenant's own fraction, exhaustion at 1.
        "interval": "1m",
        "input_series": [
            {
                "series": 'strata_budget_used_ratio{instance="a", job="strata", tenant="acme", limit="tokens"}',
                "values": "0.5 0.85 1.0",
            },
            {
                "series": 'strata_budget_used_ratio{instance="b", job="strata", tenant="acme", limit="tokens"}',
                "values": "0.5 0.85 1.0",
            },
            {"series": 'strata_budget_alert_ratio{instance="a", job="strata", tenant="acme"}', "values": "0.8x2"},
            {"series": 'strata_budget_alert_ratio{instance="b", job="strata", tenant="acme"}', "values": "0.8x2"},
            {
                "series": 'strata_budget_used_ratio{instance="a", job="strata", tenant="calm", limit="cost"}',
                "values": "0.1x2",
            },
            {"series": 'strata_budget_alert_ratio{instance="a", job="strata", tenant="calm"}', "values": "0.8x2"},
        ],
        "alert_rule_test": [
            _alert("StrataBudgetSoftLimit", "0m"),
            _fires("StrataBudgetSoftLimit", "1m", {"tenant": "acme", "limit": "tokens"}),
            _alert("StrataBudgetExhausted", "1m"),
            _fires("StrataBudgetExhausted", "2m", {"tenant": "acme", "limit": "tokens"}),
        ],
    },
    {  # 6. The audit chain: broken, its walks stale, rows dropped.
        "interval": "1m",
        "input_series": [
            {"series": f"strata_audit_chain_ok{{{GATEWAY}}}", "values": "1 1 0"},
            {"series": f"strata_audit_chain_verified_timestamp_seconds{{{GATEWAY}}}", "values": "0x70"},
            {"series": f"strata_audit_dropped_rows{{{GATEWAY}}}", "values": "0 0 3 3"},
        ],
        "alert_rule_test": [
            _alert("StrataAuditChainBroken", "1m"),
            _fires("StrataAuditChainBroken", "2m", TARGET),
            _alert("StrataAuditChainNotVerified", "59m"),
            _fires("StrataAuditChainNotVerified", "61m", TARGET),
            _fires("StrataAuditRowsDropped", "3m", TARGET),
        ],
    },
    {  # 7. Input drift: a route whose PSI passes 0.25 for 10 minutes fires; a moderate one and one still
        #    filling its windows (NaN) do not.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_drift_score{{{GATEWAY}, route="embed"}}', "values": "0.05x5 0.4x20"},
            {"series": f'strata_drift_score{{{GATEWAY}, route="calm"}}', "values": "0.12x25"},
            {"series": f'strata_drift_score{{{GATEWAY}, route="new"}}', "values": " ".join(["NaN"] * 26)},
        ],
        "alert_rule_test": [
            _alert("StrataInputDrift", "5m"),
            _alert("StrataInputDrift", "12m"),  # pending: not yet 10 minutes over
            _fires("StrataInputDrift", "20m", {"route": "embed"}),
        ],
    },
    {  # 8. Guards act on 30% of one route's requests (fires) and 5% of another's (does not).
        "interval": "1m",
        "input_series": [
            {
                "series": f'strata_guard_decisions_total{{{GATEWAY}, route="chat", guard="pii", stage="input", '
                'action="redact"}',
                "values": "0+30x60",
            },
            {"series": f'strata_route_requests_total{{{GATEWAY}, route="chat"}}', "values": "0+100x60"},
            {
                "series": f'strata_guard_decisions_total{{{GATEWAY}, route="quiet", guard="pii", stage="input", '
                'action="flag"}',
                "values": "0+5x60",
            },
            {"series": f'strata_route_requests_total{{{GATEWAY}, route="quiet"}}', "values": "0+100x60"},
        ],
        "alert_rule_test": [
            _alert("StrataGuardHitRateHigh", "10m"),
            _fires("StrataGuardHitRateHigh", "40m", {"route": "chat"}),
        ],
    },
    {  # 9. A day of 100-token answers, then 300-token ones: the output length alert fires once the last
        #    hour's mean has been over twice the day before's for 30 minutes.
        "interval": "1m",
        "input_series": [
            {"series": f'strata_output_tokens_count{{{GATEWAY}, route="chat"}}', "values": "0+60x1600"},
            {
                "series": f'strata_output_tokens_sum{{{GATEWAY}, route="chat"}}',
                "values": "0+6000x1440 8658000+18000x159",
            },
        ],
        "alert_rule_test": [
            _alert("StrataOutputLengthShift", "1440m"),
            _fires("StrataOutputLengthShift", "1540m", {"route": "chat"}),
        ],
    },
]


def test_rules_fire_on_what_they_watch(tmp_path: Path) -> None:
    # Expected labels include each rule's own (severity): merged in here rather than in every case.
    severity = {rule["alert"]: rule["labels"]["severity"] for g in rules()["groups"] for rule in g["rules"]
                if "alert" in rule}  # fmt: skip
    for case in CASES:
        for check in case["alert_rule_test"]:
            for expected in check["exp_alerts"]:
                expected["exp_labels"] = {"alertname": check["alertname"], "severity": severity[check["alertname"]],
                                          **expected["exp_labels"]}  # fmt: skip
    # promtool compares annotations too: the rules are tested without theirs (check rules validates them).
    bare = rules()
    for group in bare["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    tests = tmp_path / "alerts_test.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": CASES}))
    ran = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_latency_slo_covers_exactly_the_inference_routes() -> None:
    """The SLO's route pattern matches every metered route of the route table and nothing else."""
    expressions = [rule["expr"] for g in rules()["groups"] for rule in g["rules"] if "record" in rule]
    patterns = {m for expr in expressions for m in re.findall(r'route=~"([^"]+)"', expr)}
    assert len(patterns) == 1
    pattern = re.compile(patterns.pop())
    raw = default_app().model_dump()
    raw["store"]["database_url"] = "sqlite:///:memory:"  # built, never started: nothing is written
    table = create_app(AppSpec.model_validate(raw)).table
    for endpoint in table.endpoints:
        assert bool(pattern.fullmatch(endpoint.path)) == endpoint.metered, endpoint.path


def test_dashboard_uses_the_recorded_slo_series() -> None:
    text = DASHBOARD.read_text()
    recorded = {rule["record"] for g in rules()["groups"] for rule in g["rules"] if "record" in rule}
    used = set(re.findall(r"strata:[a-z0-9_:]+", text))
    assert used
    assert used <= recorded


def test_grafana_dashboard_is_well_formed() -> None:
    """What Grafana's import needs: unique panel ids, panels inside the 24-column grid without overlap,
    every query on the data source variable (no hard-coded data source uid) with its own refId."""
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "deployment", "route"} <= variables
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(grid["y"] + dy, grid["x"] + dx) for dy in range(grid["h"]) for dx in range(grid["w"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"]
