"""Response bodies of the dashboard's admin routes (``/v1/admin/dashboard/...``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StageLatency(BaseModel):
    p50_ms: float | None = Field(description="Median over the point's window; null when nothing passed the stage.")
    p95_ms: float | None
    p99_ms: float | None
    per_s: float = Field(description="Observations of the stage per second.")


class LiveDeployment(BaseModel):
    tokens_in_per_s: float
    tokens_out_per_s: float
    queue_depth: float = Field(description="Requests waiting for a batch at the end of the window.")
    running: float = Field(description="Sequences in the running decode batch at the end of the window.")
    stages: dict[str, StageLatency]


class LiveRoute(BaseModel):
    requests_per_s: float
    errors_per_s: float


class LivePoint(BaseModel):
    at: float = Field(description="Unix time the window ends.")
    window_s: float
    routes: dict[str, LiveRoute] = Field(description="Inference routes only.")
    deployments: dict[str, LiveDeployment]


class LiveSeries(BaseModel):
    object: Literal["dashboard.live"]
    interval_s: float = Field(description="Seconds between two points.")
    points: list[LivePoint] = Field(description="Oldest first.")


class BudgetStanding(BaseModel):
    tenant: str
    period: Literal["day", "month"]
    max_tokens: int | None
    max_cost: float | None
    alert_fraction: float
    tokens: int
    cost: float
    used: dict[str, float] = Field(description="Share of each limit used: tokens, cost (1 = spent).")


class JobCount(BaseModel):
    pipeline: str
    status: str
    count: int


class DeadLetter(BaseModel):
    id: str
    tenant: str
    pipeline: str
    error: str | None
    created_at: float
    finished_at: float | None


class AuditChain(BaseModel):
    checked: bool = Field(description="False until the first walk of the chain has finished.")
    ok: bool | None
    rows: int | None
    problems: list[str]
    verified_at: float | None
    seconds: float | None = Field(description="How long the last walk took.")


class DashboardOverview(BaseModel):
    object: Literal["dashboard.overview"]
    at: float
    budgets: list[BudgetStanding]
    jobs: list[JobCount]
    dead_letter: list[DeadLetter] = Field(description="The most recent dead-letter jobs, newest first.")
    audit_chain: AuditChain
