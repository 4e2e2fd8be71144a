"""Prometheus metrics for one running app, in a registry the app owns (no process globals).

Latency is split by pipeline stage so a slow request can be traced to where time went:
parse -> queue_wait -> batch_formation -> inference -> postprocess.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics_exposition

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
TOKEN_INTERVAL_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
COST_BUCKETS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)
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
    time_to_first_token: HistogramChild
    time_per_output_token: HistogramChild
    cost: HistogramChild


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
            exemplars=True,  # each bucket names a recent request's trace (OpenMetrics scrapes)
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
        # What people expect of an LLM server (vLLM, TGI): time to first token from the request's arrival,
        # the time between output tokens, and what each request cost (the price's currency units).
        self.time_to_first_token = LeanHistogram(
            "strata_time_to_first_token_seconds",
            "From a generation request's arrival to its first token",
            ["deployment"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.time_per_output_token = LeanHistogram(
            "strata_time_per_output_token_seconds",
            "Inter-token latency: decode time over the output tokens after the first",
            ["deployment"],
            buckets=TOKEN_INTERVAL_BUCKETS_S,
            registry=r,
        )
        self.request_cost = LeanHistogram(
            "strata_request_cost", "Cost of one request by the deployment's price", ["deployment"],
            buckets=COST_BUCKETS, registry=r,
        )  # fmt: skip
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
        self.exchanges_dropped = Gauge(
            "strata_exchanges_dropped_rows",
            "Stored exchanges (kept by a tenant's data policy) lost to a full buffer since start",
            registry=r,
        )
        self.traces_dropped = Gauge(
            "strata_traces_dropped", "Kept or exported traces lost to a full tracing buffer since start", registry=r
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
            time_to_first_token=self.time_to_first_token.labels(deployment=name),
            time_per_output_token=self.time_per_output_token.labels(deployment=name),
            cost=self.request_cost.labels(deployment=name),
        )

    def render(self, *, openmetrics: bool = False) -> bytes:
        """The Prometheus text format, or OpenMetrics (which carries exemplars) when the scraper asks."""
        if openmetrics:
            return openmetrics_exposition.generate_latest(self.registry)  # type: ignore[no-untyped-call,no-any-return]
        return generate_latest(self.registry)
