"""The lean request-path metrics render exactly as prometheus_client's own would."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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
