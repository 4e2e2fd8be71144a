from benchmarks.overload import OpenLoad, multiple_rows


def _load(statuses: list[int], retry_after: list[bool], latencies: list[float]) -> OpenLoad:
    return OpenLoad(
        rate=10.0,
        elapsed_s=1.0,
        sent_at_s=[index / 10 for index in range(len(statuses))],
        latencies_s=latencies,
        statuses=statuses,
        retry_after=retry_after,
    )


def test_goodput_and_retry_after_share_come_from_the_replies() -> None:
    result = _load([200, 200, 503, 503, 200, 503, 200, 200, 200, 503], [False] * 2 + [True] * 8, [0.1] * 10)
    assert result.duration_s == 1.0
    assert result.goodput == 6.0
    assert result.count(503) == 4
    assert result.retry_after_share == 1.0
    assert result.latencies(503) == [0.1] * 4
    missing = _load([503, 503], [True, False], [0.01, 0.01])
    assert missing.retry_after_share == 0.5


def test_rows_judge_the_targets() -> None:
    fast_admitted = _load([200] * 9 + [503], [False] * 9 + [True], [0.15] * 9 + [0.01])
    rows = {row.case: row for row in multiple_rows(10, fast_admitted, 10.0, 200.0, 500.0)}
    assert rows["10x capacity: admitted p99"].met is True
    assert rows["10x capacity: reject p99"].met is True
    assert rows["goodput 10x / 1x"].value == 0.9
    assert rows["goodput 10x / 1x"].met is True
    slow = _load([200] * 10, [False] * 10, [0.4] * 10)
    rows = {row.case: row for row in multiple_rows(1, slow, 10.0, 200.0, 500.0)}
    assert rows["1x capacity: admitted p99"].met is False
    assert "1x capacity: reject p99" not in rows  # nothing was rejected
