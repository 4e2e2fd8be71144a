"""Metrics of the workflow engine's workers: in the app's own registry in a gateway, in the
worker's when `strata worker` runs them (served on its own /metrics, see workflows.monitor)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

SETTLED = ("succeeded", "dead_letter", "cancelled")  # the status label of strata_jobs_finished
STEP_BUCKETS_S = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 300.0)


class WorkflowMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.claimed = Counter("strata_jobs_claimed", "Jobs claimed by a worker (reclaims included)", ["pipeline"],
                               registry=r)  # fmt: skip
        self.finished = Counter(
            "strata_jobs_finished",
            "Jobs settled: succeeded, dead_letter, cancelled",
            ["pipeline", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "strata_job_step_attempts", "Step attempts by outcome", ["pipeline", "step", "outcome"], registry=r
        )
        self.leases_lost = Counter(
            "strata_job_leases_lost",
            "Jobs a worker stopped running because its lease was taken over (it ran out: a stall)",
            ["pipeline"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "strata_job_step_seconds", "Time one step attempt ran", ["pipeline"], buckets=STEP_BUCKETS_S, registry=r
        )

    def declare(self, pipeline: str) -> None:
        """Start a pipeline's outcome counters at zero, so the first dead letter is an increase."""
        for status in SETTLED:
            self.finished.labels(pipeline=pipeline, status=status)
