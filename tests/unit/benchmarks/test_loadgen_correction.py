"""The load generator's coordinated-omission correction (HdrHistogram's recordValueWithExpectedInterval).

Where a test compares lists, the values are multiples of 1/8: exact in binary floating point.
"""

import itertools

import pytest
from benchmarks.loadgen import corrected_for_coordinated_omission, expected_interval_s, percentile


def test_a_stall_is_backfilled_with_the_requests_it_held_back() -> None:
    # E = 0.25: a 1.0 s answer stands for the requests a steady client would have sent meanwhile.
    assert corrected_for_coordinated_omission([1.0], 0.25) == [1.0, 0.75, 0.5, 0.25]


def test_backfill_stops_below_the_expected_interval() -> None:
    assert corrected_for_coordinated_omission([1.125], 0.5) == [1.125, 0.625]  # 0.125 < E: not recorded


def test_latencies_within_the_expected_interval_are_kept_as_they_are() -> None:
    latencies = [0.25, 0.125, 0.375]  # all below 2E: nothing to backfill
    assert corrected_for_coordinated_omission(latencies, 0.25) == latencies


def test_each_latency_is_corrected_on_its_own_and_order_is_kept() -> None:
    assert corrected_for_coordinated_omission([0.25, 0.75, 0.25], 0.25) == [0.25, 0.75, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_no_expected_interval_means_no_correction(interval: float) -> None:
    assert corrected_for_coordinated_omission([1.0, 2.0], interval) == [1.0, 2.0]


def test_a_long_stall_backfills_exactly_one_value_per_missed_interval() -> None:
    corrected = corrected_for_coordinated_omission([10.0005], 0.001)
    assert len(corrected) == 10_000  # 10.0005, 9.9995, ..., 0.0015: no rounding drift drops or adds one
    assert corrected[-1] == pytest.approx(0.0015)
    assert all(a - b == pytest.approx(0.001) for a, b in itertools.pairwise(corrected))


def test_the_correction_moves_p99_to_the_stall() -> None:
    # 990 answers of 1 ms and one stall of 100 ms: raw p99 hides the stall, corrected p99 shows it.
    latencies = [0.001] * 990 + [0.1]
    interval = expected_interval_s(latencies)
    assert interval == 0.001
    assert percentile(latencies, 99) == 0.001
    corrected = corrected_for_coordinated_omission(latencies, interval)
    assert len(corrected) == 990 + 100  # the stall plus the 99 requests held back behind it
    assert percentile(corrected, 99) > 0.05
    assert max(corrected) == max(latencies)  # the correction never raises the maximum
