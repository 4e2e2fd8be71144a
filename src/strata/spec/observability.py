"""Observability settings: request traces, kept in process and optionally exported over OTLP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # unknown keys are errors, as everywhere in the spec


class OTLPSpec(_Spec):
    """Export of traces to an OpenTelemetry collector (OTLP over HTTP, protobuf)."""

    endpoint: str = Field(
        pattern=r"^https?://",
        description="The collector's OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with every export (e.g. an authorization header for a vendor)."
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traces exported, chosen by trace id (so every service that uses the same ratio "
        "keeps the same traces). A caller's traceparent decides instead: its sampled flag is followed.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="How long one export may take before it is dropped.")
    max_queue_spans: int = Field(
        default=8192, ge=64, description="Spans waiting for export; beyond this, new spans are dropped and counted."
    )


class TracingSpec(_Spec):
    """One trace per request, built from its request record after the response has gone."""

    enabled: bool = Field(
        default=True,
        description="Trace every request: a traceparent header on every response, the trace store, OTLP export.",
    )
    keep_errors: int = Field(default=1000, ge=0, description="Error traces (status 4xx/5xx) the store keeps.")
    keep_slow: int = Field(default=500, ge=0, description="Slow traces kept: slower than their route's recent p99.")
    keep_sampled: int = Field(default=1000, ge=0, description="Other traces kept (see sample_per_s).")
    sample_per_s: float = Field(
        default=20.0,
        ge=0,
        description="Of the traces neither failed nor slow, at most this many a second are kept (at low traffic, "
        "all of them). A request whose caller sent a sampled traceparent is always kept.",
    )
    buffer_records: int = Field(
        default=65536,
        ge=16,
        description="Kept or exported requests waiting to be stored and exported (a batch every 50 ms); beyond this "
        "they are dropped and counted (the strata_traces_dropped gauge).",
    )
    otlp: OTLPSpec | None = Field(default=None, description="Export to an OpenTelemetry collector; None: keep only.")


class LogsSpec(_Spec):
    """How `strata serve` and `strata worker` log (the level is their --log-level option)."""

    format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per entry; json: one JSON object per line, one schema for every "
        "entry (time, level, logger, message, trace_id and span_id when logged inside a request, then fields).",
    )
    access_lines: bool = Field(
        default=True,
        description="Log an access line (logger strata.access, level INFO) for each request the trace store "
        "keeps: every error, the slowest, a sample of the rest; with its trace id.",
    )


class DriftRouteSpec(_Spec):
    route: str = Field(description="A route of this app whose inputs are watched.")
    embed_with: str | None = Field(
        default=None,
        description="Generation routes: an embedding route that embeds the sampled inputs off the request path. "
        "Embedding routes use their own vectors and predict routes their numeric inputs: leave it out.",
    )


class DriftSpec(_Spec):
    """Input drift per route: PSI of the current window against a reference window (see drift.py)."""

    routes: list[DriftRouteSpec] = Field(default_factory=list, description="The routes watched (none by default).")
    sample_rate: float = Field(default=0.1, gt=0, le=1, description="Share of inputs sampled into the windows.")
    reference_samples: int = Field(
        default=500, ge=20, le=100_000, description="The first this many samples after start form the reference."
    )
    window_samples: int = Field(
        default=500, ge=20, le=100_000, description="The current window: the latest this many samples."
    )
    projections: int = Field(
        default=16, ge=1, le=256, description="Random directions the vectors are projected on; PSI is averaged."
    )
    bins: int = Field(default=10, ge=2, le=100, description="Bins per projection, at the reference's quantiles.")
    max_queue: int = Field(
        default=1024, ge=1, le=1_000_000, description="Samples waiting to be embedded or added; past this, dropped."
    )


class ObservabilitySpec(_Spec):
    tracing: TracingSpec = Field(default_factory=TracingSpec, description="Request traces.")
    logs: LogsSpec = Field(default_factory=LogsSpec, description="Log format and access lines.")
    drift: DriftSpec = Field(default_factory=DriftSpec, description="Input drift monitoring per route.")
