"""The demo's report: percentiles per stage and the PNG (from a recorded run, no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strata.apps.autonomy.demo import plot, summarise
from strata.apps.autonomy.fleet import STAGES, FleetRecord, server_timing


def test_server_timing_is_read_back_into_stages() -> None:
    assert server_timing("feature_read;dur=1.500, inference;dur=4.000") == {"feature_read": 0.0015, "inference": 0.004}


def test_the_summary_and_the_png_come_from_the_record(tmp_path: Path) -> None:
    record = FleetRecord()
    record.plan_latency_s = [0.001 * i for i in range(1, 101)]
    record.unaligned_latency_s = list(record.plan_latency_s)
    record.plan_at_s = [0.05 * i for i in range(100)]
    record.stages_s = {stage: [0.001] * 100 for stage in STAGES}
    record.events, record.plans = 6_000, 100
    waypoints = np.column_stack([np.arange(1.0, 13.0), np.zeros(12)]).tolist()
    plan = {"plan": {"waypoints": waypoints}, "alternatives": [{"waypoints": waypoints}]}
    record.tracked = {"veh-0": {"plan": plan, "truth": np.column_stack([np.arange(30.0) * 0.4, np.zeros(30)])}}
    summary = summarise(record, duration_s=5.0)
    assert summary.events_per_min == 72_000
    p50, p95, p99 = summary.percentiles_ms["plan (total)"]
    assert (round(p50), round(p95), round(p99)) == (50, 95, 99)
    png = tmp_path / "demo.png"
    plot(summary, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
