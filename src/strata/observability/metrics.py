"""Prometheus metrics for one running app, in a registry the app owns (no process globals).

Latency is split by pipeline stage so a slow request can be traced to where time went:
parse -> queue_wait -> batch_formation -> inference -> postprocess.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from strata.observability.lean import CounterChild, HistogramChild, LeanCounter, LeanHistogram

LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STAGES = ("parse", "queue_wait", "batch_formation", "inference", "postprocess")


@dataclass(frozen=True, slots=True)
class DeploymentMetrics:
    """The metric children one deployment writes to, bound to its labels once (hot path: no lookups)."""

    parse: HistogramChild
    queue_wait: HistogramChild
    batch_formation: HistogramChild
    inference: HistogramChild
    postprocess: HistogramChild
    batch_size: HistogramChild
    queue_depth: Gauge
    running: Gauge
    tokens_in: CounterChild
    tokens_out: CounterChild


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The request path's metrics are lean (see lean.py); the rest are prometheus_client's own.
        self.requests = LeanCounter("strata_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.errors = LeanCounter(
            "strata_request_errors", "Requests answered with an error", ["route", "code"], registry=r
        )
        self.request_latency = LeanHistogram(
            "strata_request_latency_seconds",
            "Whole-request latency at the gateway",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.stage_latency = LeanHistogram(
            "strata_stage_latency_seconds",
            "Latency of one pipeline stage",
            ["deployment", "stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = LeanHistogram(
            "strata_batch_size",
            "Requests (or sequences) per model call",
            ["deployment"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("strata_queue_depth", "Requests waiting for a batch", ["deployment"], registry=r)
        self.running = Gauge(
            "strata_running_sequences", "Sequences in the running decode batch", ["deployment"], registry=r
        )
        self.tokens = LeanCounter("strata_tokens", "Tokens processed", ["deployment", "direction"], registry=r)
        self.guard_decisions = LeanCounter(
            "strata_guard_decisions",
            "Guard decisions: requests where a guard found something, by route, guard, stage and action",
            ["route", "guard", "stage", "action"],
            registry=r,
        )
        self.audit_dropped = Gauge(
            "strata_audit_dropped_rows",
            "Audit rows lost to a full audit buffer since start (each loss is also an audit.overflow row)",
            registry=r,
        )
        self.replicas_ready = Gauge(
            "strata_replicas_ready", "Replicas loaded, warmed and taking traffic", ["deployment"], registry=r
        )

    def for_deployment(self, name: str) -> DeploymentMetrics:
        stage = {s: self.stage_latency.labels(deployment=name, stage=s) for s in STAGES}
        return DeploymentMetrics(
            parse=stage["parse"],
            queue_wait=stage["queue_wait"],
            batch_formation=stage["batch_formation"],
            inference=stage["inference"],
            postprocess=stage["postprocess"],
            batch_size=self.batch_size.labels(deployment=name),
            queue_depth=self.queue_depth.labels(deployment=name),
            running=self.running.labels(deployment=name),
            tokens_in=self.tokens.labels(deployment=name, direction="in"),
            tokens_out=self.tokens.labels(deployment=name, direction="out"),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
