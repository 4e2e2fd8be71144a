"""(f) Autoscaling: the Strata policy against the threshold baseline and a fixed peak-sized deployment.

A simulation, not a cluster: each trace (steady, diurnal, bursty) runs through the deployment
model of ``strata.scaling.simulation`` (4 batch slots x 100 ms per replica, 8 s cold start,
0.5 s control interval, p99 target 300 ms) under each policy, on the same seeded requests. Each
trace is simulated for 120 x ``duration_s`` seconds (10 minutes at the default 5 s) and over three
seeds, summed: one seed's bursts can fall anywhere. It is CPU-only and takes a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.harness import Row
from strata.scaling.simulation import SIMULATION_LATENCY_TARGET_S, SIMULATION_SPEC, compare
from strata.scaling.traces import TRACE_NAMES, build_trace

SEEDS = (0, 1, 2)
SIMULATED_PER_BENCH_SECOND = 120.0


@dataclass
class _Total:
    requests: int = 0
    violating: float = 0.0
    replica_seconds: float = 0.0
    scale_events: int = 0

    @property
    def violation_share(self) -> float:
        return self.violating / self.requests if self.requests else 0.0


def _totals(trace_name: str, duration_s: float) -> dict[str, _Total]:
    totals: dict[str, _Total] = {}
    for seed in SEEDS:
        trace = build_trace(trace_name, duration_s, seed=seed)
        for result in compare(trace, SIMULATION_SPEC, latency_target_s=SIMULATION_LATENCY_TARGET_S, seed=seed):
            total = totals.setdefault(result.policy, _Total())
            total.requests += result.requests
            total.violating += result.slo_violation_share * result.requests
            total.replica_seconds += result.replica_seconds
            total.scale_events += result.scale_events
    return totals


def run(duration_s: float) -> list[Row]:
    simulated_s = SIMULATED_PER_BENCH_SECOND * duration_s
    rows: list[Row] = []
    for trace_name in TRACE_NAMES:
        totals = _totals(trace_name, simulated_s)
        for policy, total in totals.items():
            case = f"{trace_name} {policy}"
            rows.append(Row("autoscaling", f"{case} replica-seconds", total.replica_seconds / len(SEEDS), "s"))
            rows.append(Row("autoscaling", f"{case} SLO-violating requests", total.violation_share * 100, "%"))
            rows.append(Row("autoscaling", f"{case} scale events", total.scale_events / len(SEEDS), "events"))
        strata, threshold, fixed = totals["strata"], totals["threshold"], totals["fixed_max"]
        versus_threshold = strata.replica_seconds / threshold.replica_seconds
        versus_fixed = strata.replica_seconds / fixed.replica_seconds
        rows.append(Row("autoscaling", f"{trace_name} replica-seconds strata/threshold", versus_threshold, "x"))
        case = f"{trace_name} replica-seconds strata/fixed_max"
        rows.append(Row("autoscaling", case, versus_fixed, "x", "< 1", versus_fixed < 1))
        if threshold.violating > 0:
            ratio = strata.violation_share / threshold.violation_share
            rows.append(
                Row("autoscaling", f"{trace_name} SLO violations strata/threshold", ratio, "x", "< 1", ratio < 1.0)
            )
    return rows
