"""The lean request-path metrics render exactly as prometheus_client's own would."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from strata.observability.lean import LeanCounter, LeanHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0, 5.0)
VALUES = (0.0005, 0.001, 0.002, 0.05, 0.1, 0.5, 3.0, 5.0, 7.5, 100.0)


def _samples(registry: CollectorRegistry) -> list[str]:
    # prometheus_client adds *_created samples (creation times); everything else must match exactly.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_a_lean_histogram_renders_like_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    lean = LeanHistogram("strata_x_seconds", "doc", ["route"], buckets=BUCKETS, registry=ours)
    reference = Histogram("strata_x_seconds", "doc", ["route"], buckets=BUCKETS, registry=theirs)
    for value in VALUES:
        lean.labels(route="/a").observe(value)
        reference.labels(route="/a").observe(value)
    lean.labels(route="/b").observe(0.01)
    reference.labels(route="/b").observe(0.01)
    assert _samples(ours) == _samples(theirs)


def test_a_lean_counter_renders_like_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    lean = LeanCounter("strata_y", "doc", ["route", "status"], registry=ours)
    reference = Counter("strata_y", "doc", ["route", "status"], registry=theirs)
    for status in ("200", "200", "404"):
        lean.labels(route="/a", status=status).inc()
        reference.labels(route="/a", status=status).inc()
    lean.labels(route="/a", status="200").inc(2.5)
    reference.labels(route="/a", status="200").inc(2.5)
    assert _samples(ours) == _samples(theirs)
    assert ours.get_sample_value("strata_y_total", {"route": "/a", "status": "200"}) == 4.5


def test_exemplars_reach_openmetrics_only() -> None:
    registry = CollectorRegistry()
    histogram = LeanHistogram("strata_x_seconds", "doc", ["route"], buckets=BUCKETS, registry=registry, exemplars=True)
    child = histogram.labels(route="/a")
    child.observe_traced(0.05, 0xABC)
    child.observe_traced(0.07, 0xDEF)  # same bucket (le 0.1): the latest wins
    child.observe_traced(3.0, 0x123)
    child.observe(0.0005)  # no trace: counted, no exemplar
    [family] = text_string_to_metric_families(openmetrics_latest(registry).decode())
    kept = {s.labels["le"]: (s.value, s.exemplar) for s in family.samples if s.name.endswith("_bucket")}
    assert kept["0.001"] == (1, None)
    count, exemplar = kept["0.1"]
    assert count == 3
    assert exemplar is not None
    assert (exemplar.labels, exemplar.value) == ({"trace_id": f"{0xDEF:032x}"}, 0.07)
    assert kept["5.0"][1] is not None
    assert kept["5.0"][1].labels["trace_id"] == f"{0x123:032x}"
    assert all(e is None or e.labels["trace_id"] != f"{0xABC:032x}" for _, e in kept.values())
    assert "trace_id" not in generate_latest(registry).decode()
