"""Versions, fallbacks, rollouts, breakers, retries, admission and health in the app spec."""

import copy
from typing import Any

import pytest

from strata.errors import SpecError
from strata.spec import parse_spec
from strata.spec.resilience import VersionSpec

ECHO = "strata.models.python_model:EchoModel"
BASE: dict[str, Any] = {
    "models": [
        {"name": "echo", "kind": "python", "entrypoint": ECHO},
        {"name": "minilm", "kind": "hf-embedding", "path": "builtin:all-MiniLM-L6-v2"},
    ],
    "deployments": [
        {"name": "blue", "model": "echo"},
        {"name": "green", "model": "echo"},
        {"name": "embed", "model": "minilm"},
    ],
    "routes": [
        {
            "name": "app",
            "versions": [
                {"name": "v1", "deployment": "blue", "weight": 95},
                {"name": "v2", "deployment": "green", "weight": 5},
            ],
            "sticky": "user",
            "fallbacks": ["small"],
        },
        {"name": "small", "deployment": "green"},
        {"name": "embed", "deployment": "embed"},
    ],
}


def _routes(*routes: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["routes"] = [*data["routes"][1:], *routes]
    return data


def test_versions_and_the_shorthand_both_parse() -> None:
    spec = parse_spec(BASE)
    app, small = spec.routes[0], spec.routes[1]
    assert [v.weight for v in app.traffic_versions()] == [95, 5]
    assert small.traffic_versions() == [VersionSpec(name="green", deployment="green", weight=100)]
    assert app.fallbacks == ["small"]
    assert spec.deployments[0].retries.max_attempts == 3
    assert spec.deployments[0].admission.max_concurrency is None  # no limit unless asked for


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"name": "r", "deployment": "blue", "versions": [{"name": "a", "deployment": "blue", "weight": 100}]},
         r"routes\[2\]: give either 'deployment' or 'versions'"),
        ({"name": "r"}, r"routes\[2\].*give either"),
        ({"name": "r", "versions": [{"name": "a", "deployment": "blue", "weight": 60},
                                    {"name": "b", "deployment": "green", "weight": 30}]}, "add up to 100"),
        ({"name": "r", "versions": [{"name": "a", "deployment": "blue", "weight": 50},
                                    {"name": "a", "deployment": "green", "weight": 50}]}, "names must be unique"),
        ({"name": "r", "versions": [{"name": "a", "deployment": "nope", "weight": 100}]},
         r"routes\[2\].versions: unknown deployment 'nope'"),
        ({"name": "r", "versions": [{"name": "a", "deployment": "blue", "weight": 50},
                                    {"name": "b", "deployment": "embed", "weight": 50}]}, "different tasks"),
        ({"name": "r", "deployment": "blue", "fallbacks": ["r"]}, r"routes\[2\].fallbacks\[0\]: 'r' is not another"),
        ({"name": "r", "deployment": "blue", "fallbacks": ["ghost"]}, r"routes\[2\].fallbacks\[0\]"),
        ({"name": "r", "deployment": "blue", "fallbacks": ["embed"]}, "serves a different task"),
        ({"name": "r", "deployment": "blue", "sticky": "cookie"}, r"routes\[2\].sticky"),
        ({"name": "r", "deployment": "blue", "rollout": {"steps": [50, 10, 100]}}, "rise strictly"),
        ({"name": "r", "deployment": "blue", "rollout": {"steps": [5, 50]}}, "end at 100"),
    ],
)  # fmt: skip
def test_bad_routes_are_named(route: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_routes(route))


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("breaker", {"consecutive_failures": 0}, "deployments[0].breaker.consecutive_failures"),
        ("retries", {"max_attempts": 0}, "deployments[0].retries.max_attempts"),
        ("retries", {"budget_ratio": 2}, "deployments[0].retries.budget_ratio"),
        ("admission", {"adaptive": True}, "deployments[0].admission"),
        ("admission", {"max_concurrency": 0}, "deployments[0].admission.max_concurrency"),
        ("health", {"stall_timeout_s": 0}, "deployments[0].health.stall_timeout_s"),
        ("outlier", {"slow_ratio": 1}, "deployments[0].outlier.slow_ratio"),
    ],
)
def test_bad_deployment_knobs_are_named(section: str, value: dict[str, Any], field: str) -> None:
    data = copy.deepcopy(BASE)
    data["deployments"][0][section] = value
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    assert field in caught.value.message
