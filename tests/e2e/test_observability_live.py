"""Against a real server: every metric and label the shipped Grafana dashboard and alert rules query is
on its /metrics, and the dashboard's admin routes report budgets, dead letters and live series."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from observability_assets import TARGET_LABELS, Query, dashboard_queries, recorded_names, rule_queries
from strata.testing import MetricSamples, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a server of its own (budgets, a pipeline)
APPS = Path(__file__).parent / "apps"
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}  # workflow_steps
    with ServerProcess(APPS / "observability.yaml", env=env) as process:
        with process.http() as http:
            assert http.post("/v1/models/echo/predict", json={"inputs": [1, 2]}).status_code == 200
            chat = {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "a canary"}], "max_tokens": 2}
            assert http.post("/v1/chat/completions", json=chat).status_code == 200  # a flagged guard decision
            assert http.post("/v1/models/nowhere/predict", json={"inputs": [1]}).status_code == 404  # an error
            job = http.post("/v1/jobs", json={"pipeline": "refused", "input": {}})
            assert job.status_code == 202, job.text
            _wait_for(lambda: http.get(f"/v1/jobs/{job.json()['id']}").json()["status"] == "dead_letter")
        yield process


def _wait_for(condition: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout_s} s")


def _scrape_with_audit_walk(server: ServerProcess) -> dict[str, set[str]]:
    """/metrics once the audit chain's first walk (started with the server) has finished."""
    deadline = time.monotonic() + 20
    while True:
        samples = MetricSamples.scrape(server.url, server.headers).label_names()
        if "strata_audit_chain_ok" in samples or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_metric_and_label_queried_is_on_a_live_metrics_page(server: ServerProcess, source: str) -> None:
    live = _scrape_with_audit_walk(server)
    queries: list[Query] = rule_queries() if source == "rules" else dashboard_queries()
    missing = []
    for query in queries:
        for metric in query.metrics():
            if metric not in live:
                missing.append(f"{query.where}: metric {metric}")
        for metric, label in query.selector_labels():
            if metric in live and label not in live[metric] | TARGET_LABELS:
                missing.append(f"{query.where}: label {label} of {metric}")
        offered = set().union(*(live.get(m, set()) for m in query.metrics())) | TARGET_LABELS
        if query.recorded():  # a recording rule's series keep the labels of its own expression (none here)
            unknown = query.recorded() - recorded_names()
            missing += [f"{query.where}: recorded series {name} is not recorded" for name in unknown]
        else:
            missing += [f"{query.where}: label {label}" for label in query.grouping_labels() - offered]
    assert not missing, "\n".join(missing)


def test_dashboard_overview_reports_budgets_jobs_and_the_audit_chain(server: ServerProcess) -> None:
    with server.http() as http:
        overview = http.get("/v1/admin/dashboard/overview").json()
    [budget] = [b for b in overview["budgets"] if b["tenant"] == "admin"]
    assert budget["max_tokens"] == 1_000_000
    assert budget["cost"] > 0  # the predict call was priced per compute second
    assert set(budget["used"]) == {"tokens", "cost"}
    assert budget["used"]["cost"] == pytest.approx(budget["cost"] / 1000.0)
    assert {"pipeline": "refused", "status": "dead_letter", "count": 1} in overview["jobs"]
    [dead] = overview["dead_letter"]
    assert dead["pipeline"] == "refused"
    assert "refused for good" in dead["error"]
    assert overview["audit_chain"]["checked"]
    assert overview["audit_chain"]["ok"]


def test_live_series_shows_the_requests(server: ServerProcess) -> None:
    with server.http() as http:
        for value in range(5):
            assert http.post("/v1/models/echo/predict", json={"inputs": [value]}).status_code == 200
        started = time.time()
        series = {}

        busy: list[dict[str, Any]] = []

        def has_traffic() -> bool:
            series.update(http.get("/v1/admin/dashboard/live", params={"since": started - 1}).json())
            busy[:] = [
                p for p in series["points"]
                if p["routes"].get("/v1/models/{model:path}/predict", {}).get("requests_per_s", 0) > 0
                and p["at"] >= started
            ]  # fmt: skip
            return bool(busy)

        _wait_for(has_traffic, timeout_s=10)
        assert all(p["at"] > started - 1 for p in series["points"])  # only points after `since`
        point = busy[0]
        assert set(point["routes"]) <= {"/v1/models/{model:path}/predict", "/v1/chat/completions",
                                        "/v1/completions", "/v1/embeddings"}  # fmt: skip
        stages = point["deployments"]["echo"]["stages"]
        assert stages["inference"]["p50_ms"] is not None
        refused = http.get("/v1/admin/dashboard/live", params={"since": "yesterday"})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "since"
    assert httpx.get(f"{server.url}/v1/admin/dashboard/live").status_code == 401
