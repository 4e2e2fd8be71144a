"""Drift: the PSI statistic on projections, the route windows, and the monitor's bounded sampling."""

import asyncio
import math

import numpy as np
import pytest

from strata.errors import SpecError
from strata.observability.behaviour import BehaviourMonitor
from strata.observability.drift import ProjectedPSI, RouteWindows, psi
from strata.observability.metrics import Metrics
from strata.principal import ANONYMOUS
from strata.record import RequestRecord
from strata.spec.observability import DriftSpec
from strata.testing import MetricSamples


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    even = np.full(4, 0.25)
    assert psi(even, even) == 0.0
    small, large = psi(even, np.array([0.3, 0.25, 0.25, 0.2])), psi(even, np.array([0.7, 0.1, 0.1, 0.1]))
    assert 0 < small < 0.1 < 0.25 < large


def test_projected_psi_tells_a_shifted_cloud_from_a_fresh_sample_of_the_same() -> None:
    rng = np.random.default_rng(7)
    reference = rng.standard_normal((500, 64))
    statistic = ProjectedPSI(reference, projections=16, bins=10)
    assert statistic.score(rng.standard_normal((500, 64))) < 0.1
    assert statistic.score(rng.standard_normal((500, 64)) + 0.5) > 0.25


def test_windows_score_once_full_and_then_every_quarter_window() -> None:
    rng = np.random.default_rng(1)
    windows = RouteWindows(reference_samples=40, window_samples=40, projections=4, bins=4)
    scores = [windows.add(v) for v in rng.standard_normal((100, 8))]
    assert all(s is None for s in scores[:79])  # 40 reference, then the window fills
    assert [i for i, s in enumerate(scores) if s is not None] == [79, 89, 99]
    assert windows.add(np.zeros(3)) is None  # another width is not comparable: skipped


def _monitor(spec: DriftSpec, embed: object = None) -> tuple[BehaviourMonitor, Metrics]:
    metrics = Metrics()

    async def no_embedding(route: str, text: str) -> object:
        raise AssertionError("not asked")

    tasks = {"embed": "embed", "chat": "generate", "tabular": "predict"}
    return BehaviourMonitor(spec, metrics, tasks, embed or no_embedding), metrics  # type: ignore[arg-type]


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return MetricSamples(metrics.render().decode()).value(name, **labels)


async def test_a_full_queue_drops_and_counts_and_never_waits() -> None:
    spec = DriftSpec(routes=[{"route": "tabular"}], sample_rate=1.0, max_queue=5)  # type: ignore[list-item]
    monitor, metrics = _monitor(spec)
    monitor.offer_inputs("tabular", [[1.0, 2.0]] * 8 + ["text", True, {"a": 1}])  # 8 vectors; the rest skipped
    assert _value(metrics, "strata_drift_samples_total", route="tabular", outcome="dropped") == 3
    assert math.isnan(_value(metrics, "strata_drift_score", route="tabular"))  # NaN until both windows fill
    monitor.offer_vectors("unwatched", [np.ones(3)])  # a route not watched costs a dict lookup, nothing more


async def test_prompts_are_embedded_off_the_path_and_score_the_route() -> None:
    asked: list[tuple[str, str]] = []

    async def embed(route: str, text: str) -> np.ndarray:
        asked.append((route, text))
        await asyncio.sleep(0)
        shift = 3.0 if text.startswith("code") else 0.0
        return np.random.default_rng(len(asked)).standard_normal(16) + shift

    spec = DriftSpec(routes=[{"route": "chat", "embed_with": "embed"}], sample_rate=1.0, reference_samples=40,
                     window_samples=40, max_queue=1000)  # type: ignore[list-item]  # fmt: skip
    monitor, metrics = _monitor(spec, embed)
    async with monitor.running():
        for index in range(40):
            monitor.offer_text("chat", f"prose {index}")
        for index in range(40):
            monitor.offer_text("chat", f"code {index}")
        for _ in range(200):
            if _value(metrics, "strata_drift_samples_total", route="chat", outcome="used") == 80:
                break
            await asyncio.sleep(0.01)
    assert asked[0] == ("embed", "prose 0")
    assert _value(metrics, "strata_drift_score", route="chat") > 0.25


def test_finished_requests_count_per_route_and_generation_lengths() -> None:
    monitor, metrics = _monitor(DriftSpec())
    for model, status, tokens in [("chat", 200, 12), ("chat", 400, 0), ("embed", 200, 0), ("nowhere", 404, 0)]:
        record = RequestRecord("POST", "/v1/x", caller=ANONYMOUS, model=model, status=status, tokens_out=tokens)
        monitor.finish(record)
    assert _value(metrics, "strata_route_requests_total", route="chat") == 2
    assert _value(metrics, "strata_output_tokens_count", route="chat") == 1  # only what was answered
    assert _value(metrics, "strata_output_tokens_sum", route="chat") == 12
    assert not MetricSamples(metrics.render().decode()).has("strata_route_requests_total", route="nowhere")


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        ({"route": "missing"}, "routes[0].route: no route 'missing'"),
        ({"route": "chat"}, "routes[0].embed_with: route 'chat' generates text"),
        ({"route": "chat", "embed_with": "tabular"}, "routes[0].embed_with: 'tabular' is not an embedding route"),
    ],
)
def test_bad_drift_routes_are_named(route: dict[str, str], problem: str) -> None:
    with pytest.raises(SpecError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        _monitor(DriftSpec(routes=[route]))  # type: ignore[list-item]
