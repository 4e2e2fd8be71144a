"""Telemetry batches: malformed events are rejected with the field and the reason, the rest kept."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import orjson
import pytest

from strata.apps.autonomy.telemetry import _parse_one_by_one, _parse_well_formed, decode, events_of, parse_events
from strata.errors import InvalidRequest

GOOD = {"vehicle_id": "v1", "timestamp": 1.7e9, "x": 1.0, "y": 2.0, "speed": 10.0, "heading": 0.5, "accel": 0.1,
        "lane": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "param", "reason"),
    [
        ({"speed": -1.0}, "speed", "within [0, 100]"),
        ({"x": math.inf}, "x", "finite"),
        ({"lane": 1.5}, "lane", "whole lane"),
        ({"lane": 7}, "lane", "within [0, 2]"),
        ({"accel": True}, "accel", "must be a number"),
        ({"vehicle_id": ""}, "vehicle_id", "non-empty"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"timestamp": None}, "timestamp", "required"),
    ],
)
def test_a_malformed_event_is_rejected_and_the_rest_kept(change: dict[str, object], param: str, reason: str) -> None:
    batch = parse_events([GOOD, {**GOOD, **change}, {**GOOD, "timestamp": 1.7e9 + 0.1}])
    assert batch.ids == ["v1", "v1"]
    assert list(batch.t) == [1.7e9, 1.7e9 + 0.1]
    assert batch.values.shape == (2, 6)
    [rejected] = batch.rejected
    assert rejected.index == 1
    assert rejected.param == f"events[1].{param}"
    assert reason in rejected.message


def test_msgpack_and_json_decode_to_the_same_batch() -> None:
    body = {"events": [GOOD]}
    as_json = orjson.dumps(body)
    assert decode(as_json, "application/json; charset=utf-8") == decode(msgpack.packb(body), "application/msgpack")
    assert events_of(decode(msgpack.packb(body), "application/msgpack")) == [GOOD]


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [(b"", None, "invalid_json"), (b"{nope", "application/json", "invalid_json"),
     (b"\xc1", "application/msgpack", "invalid_msgpack")],
)  # fmt: skip
def test_an_undecodable_body_is_refused(body: bytes, content_type: str | None, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode(body, content_type)
    assert caught.value.code == code


def test_a_body_without_an_events_list_names_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        events_of({"event": []})
    assert caught.value.param == "events"


def test_the_column_wise_fast_path_agrees_with_the_event_by_event_checks() -> None:
    rng = np.random.default_rng(2)
    events = [
        {**GOOD, "vehicle_id": f"v{i % 7}", "timestamp": 1.7e9 + i, "x": float(rng.normal(0, 1e3)),
         "speed": float(rng.uniform(0, 40)), "lane": int(rng.integers(0, 3)), "accel": int(rng.integers(-3, 3))}
        for i in range(50)
    ]  # fmt: skip
    fast = _parse_well_formed(events)
    assert fast is not None
    slow = _parse_one_by_one(events)
    assert fast.ids == slow.ids
    assert fast.rejected == slow.rejected == []
    np.testing.assert_array_equal(fast.t, slow.t)
    np.testing.assert_array_equal(fast.values, slow.values)
    assert _parse_well_formed([*events, {**GOOD, "speed": True}]) is None  # a closer look names the field
