"""Drift over real HTTP: English sentences form an embedding route's reference window; more English
keeps the drift score low; code sent instead drives it over the shipped alert's threshold."""

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from observability_assets import rules
from strata.testing import MetricSamples, ServerProcess

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "apps" / "protected.yaml"  # drift: MiniLM, every input sampled, windows of 200
ROUTE = "all-MiniLM-L6-v2"
WINDOW = 200

SUBJECTS = ["The farmer", "My sister", "A young doctor", "The old teacher", "Our neighbour", "The pilot", "A tourist",
            "The baker", "His cousin", "The mayor", "A student", "The gardener"]  # fmt: skip
VERBS = ["walked to", "talked about", "painted", "visited", "cleaned", "remembered", "photographed", "described"]
OBJECTS = ["the river", "a small village", "the market", "an old castle", "the garden", "a quiet beach",
           "the museum", "the library", "a busy station", "the mountains"]  # fmt: skip
TIMES = ["yesterday", "last summer", "on Sunday morning", "after dinner", "in the rain", "before sunrise", "at noon"]


def english(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TIMES)}."
            for _ in range(count)]  # fmt: skip


def code(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    names = ["items", "rows", "cache", "buf", "result", "node", "keys", "acc"]
    shapes = [
        "def {a}_{n}({b}): return [x * {n} for x in {b} if x % {m} == 0]",
        "for (int i = 0; i < {n}; i++) {{ {a}[i] = {b}[i] << {m}; }}",
        "SELECT {a}, COUNT(*) FROM {b} WHERE id > {n} GROUP BY {a} HAVING COUNT(*) > {m};",
        "const {a} = {b}.map((v) => v + {n}).filter((v) => v % {m});",
    ]
    return [rng.choice(shapes).format(a=rng.choice(names), b=rng.choice(names), n=rng.randint(1, 999),
                                      m=rng.randint(2, 9)) for _ in range(count)]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP, env={"STRATA_DATA_KEYS": "k1:" + "A" * 43 + "="}) as process:
        yield process


def _send(client: openai.OpenAI, texts: list[str]) -> None:
    for start in range(0, len(texts), 50):
        client.embeddings.create(model=ROUTE, input=texts[start : start + 50])


def _score_after(server: ServerProcess, used: int) -> float:
    """The drift score once ``used`` samples went through the monitor (it runs beside the requests)."""
    deadline = time.monotonic() + 60
    while True:
        samples = MetricSamples.scrape(server.url, server.headers)
        if samples.value("strata_drift_samples_total", route=ROUTE, outcome="used") >= used:
            return samples.value("strata_drift_score", route=ROUTE)
        assert time.monotonic() < deadline, "the drift monitor did not take the samples"
        time.sleep(0.2)


def _alert_threshold() -> float:
    """The shipped StrataInputDrift rule's threshold, read from its expression."""
    rule = next(r for g in rules()["groups"] for r in g["rules"] if r.get("alert") == "StrataInputDrift")
    found = re.fullmatch(r"max by \(route\) \(strata_drift_score\) > ([0-9.]+)", rule["expr"].strip())
    assert found is not None, rule["expr"]
    return float(found.group(1))


def test_shifted_inputs_cross_the_drift_alert_threshold(server: ServerProcess) -> None:
    threshold = _alert_threshold()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0) as client:
        same, shifted = _english_then_code(server, client)
    print(f"drift score: English after English {same:.3f}, code after English {shifted:.3f} (alert > {threshold})")
    assert same < threshold, f"English after English scored {same:.3f}"
    assert shifted > threshold, f"code after English scored only {shifted:.3f}"
    samples = MetricSamples.scrape(server.url, server.headers)
    assert samples.value("strata_drift_samples_total", route=ROUTE, outcome="dropped") == 0
    assert samples.value("strata_route_requests_total", route=ROUTE) >= 3 * WINDOW / 50


def _english_then_code(server: ServerProcess, client: openai.OpenAI) -> tuple[float, float]:
    _send(client, english(1, WINDOW))  # the reference window
    assert _score_after(server, WINDOW) != _score_after(server, WINDOW)  # NaN: no current window yet
    _send(client, english(2, WINDOW))  # the same kind of input, other sentences
    same = _score_after(server, 2 * WINDOW)
    _send(client, code(3, WINDOW))  # the whole current window is now code
    return same, _score_after(server, 3 * WINDOW)
