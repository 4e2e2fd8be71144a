"""Telemetry events: decoding (JSON or msgpack) and validation, shared by HTTP and Redis ingest.

A batch is ``{"events": [{vehicle_id, timestamp, x, y, speed, heading, accel, lane}, ...]}``.
Each malformed event is rejected with the field named and the reason; the rest are kept.
The checks are written out by hand rather than with a pydantic model per event because this is
the hot path of ingest (a million events a minute on one core).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import orjson
from numpy.typing import NDArray

from strata.apps.autonomy.simulator import COLUMNS, LANES
from strata.errors import InvalidRequest

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
MAX_EVENTS = 50_000
MAX_SPEED_MPS = 100.0
MAX_ACCEL_MPS2 = 30.0
MAX_COORD_M = 1e7
VEHICLE_ID_MAX = 128
FIELDS = ("vehicle_id", "timestamp", *COLUMNS)


@dataclass(frozen=True)
class Rejected:
    index: int
    param: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "param": self.param, "message": self.message}


@dataclass(frozen=True)
class EventBatch:
    ids: list[str]
    t: NDArray[np.float64]
    values: NDArray[np.float64]  # (n, len(COLUMNS))
    rejected: list[Rejected]


def decode(body: bytes, content_type: str | None) -> Any:
    """The request body as Python objects; msgpack when the content type says so, else JSON."""
    if not body:
        raise InvalidRequest('The request body is empty; send {"events": [...]}.', code="invalid_json")
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media in MSGPACK_TYPES:
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as error:
            raise InvalidRequest(f"The request body is not valid msgpack: {error}", code="invalid_msgpack") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error}", code="invalid_json") from None


def events_of(payload: Any) -> list[Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise InvalidRequest("The body must be an object with 'events': a list of events.", param="events")
    events: list[Any] = payload["events"]
    if len(events) > MAX_EVENTS:
        raise InvalidRequest(f"A batch holds at most {MAX_EVENTS} events, got {len(events)}.", param="events")
    return events


def parse_events(events: list[Any]) -> EventBatch:
    """Well-formed events as arrays, and the rejected ones with their reasons."""
    fast = _parse_well_formed(events)
    return fast if fast is not None else _parse_one_by_one(events)


def _parse_well_formed(events: list[Any]) -> EventBatch | None:
    """The common case, checked a column at a time with numpy; None when any event needs a closer look."""
    if not all(type(event) is dict and event.keys() == _KNOWN for event in events):
        return None
    ids = [event["vehicle_id"] for event in events]
    if not all(type(vehicle) is str and 0 < len(vehicle) <= VEHICLE_ID_MAX for vehicle in ids):
        return None
    columns = []
    for name, low, high in _RANGES:
        values = [event[name] for event in events]
        if not {type(value) for value in values} <= _NUMBER_TYPES:
            return None
        column = np.array(values, dtype=np.float64)
        if not (np.isfinite(column).all() and (column >= low).all() and (column <= high).all()):
            return None
        columns.append(column)
    if not (columns[-1] == np.round(columns[-1])).all():  # lane: a whole index
        return None
    array = np.column_stack(columns) if events else np.zeros((0, 1 + len(COLUMNS)))
    return EventBatch(ids, array[:, 0].copy(), array[:, 1:].copy(), [])


def _parse_one_by_one(events: list[Any]) -> EventBatch:
    ids: list[str] = []
    rows: list[tuple[float, ...]] = []
    rejected: list[Rejected] = []
    for index, event in enumerate(events):
        problem = _check(event)
        if problem is not None:
            rejected.append(Rejected(index, f"events[{index}].{problem[0]}", problem[1]))
            continue
        ids.append(event["vehicle_id"])
        rows.append((event["timestamp"], event["x"], event["y"], event["speed"], event["heading"], event["accel"],
                     event["lane"]))  # fmt: skip
    array = np.array(rows, dtype=np.float64).reshape(len(rows), 1 + len(COLUMNS))
    return EventBatch(ids, array[:, 0].copy(), array[:, 1:].copy(), rejected)


def _check(event: Any) -> tuple[str, str] | None:
    """(field, reason) for the first problem of an event, None when it is well formed."""
    if not isinstance(event, dict):
        return "", "each event must be an object"
    vehicle = event.get("vehicle_id")
    if not isinstance(vehicle, str) or not 0 < len(vehicle) <= VEHICLE_ID_MAX:
        return "vehicle_id", f"must be a non-empty string of at most {VEHICLE_ID_MAX} characters"
    for name, low, high in _RANGES:
        value = event.get(name)
        if value is None:
            return name, "is required and must be a number"
        if type(value) not in (int, float):  # bool is an int subclass: not a measurement
            return name, "must be a number"
        if not (math.isfinite(value) and low <= value <= high):
            return name, f"must be finite and within [{low:g}, {high:g}], got {value!r}"
    lane = event["lane"]
    if lane != int(lane):
        return "lane", f"must be a whole lane index, got {lane!r}"
    extra = event.keys() - _KNOWN
    if extra:
        return sorted(extra)[0], "unknown field"
    return None


_RANGES = (
    ("timestamp", 0.0, 1e11),
    ("x", -MAX_COORD_M, MAX_COORD_M),
    ("y", -MAX_COORD_M, MAX_COORD_M),
    ("speed", 0.0, MAX_SPEED_MPS),
    ("heading", -2 * math.pi, 2 * math.pi),
    ("accel", -MAX_ACCEL_MPS2, MAX_ACCEL_MPS2),
    ("lane", 0, LANES - 1),
)
_KNOWN = frozenset(FIELDS)
_NUMBER_TYPES = {int, float}  # exactly: bool is an int subclass and not a measurement


def encode_events(ids: list[str], t: NDArray[np.float64], values: NDArray[np.float64]) -> list[dict[str, Any]]:
    """Events in the wire format (simulator, demo, benchmark and tests produce them this way)."""
    return [
        {"vehicle_id": vehicle, "timestamp": float(t[i]), "x": float(row[0]), "y": float(row[1]),
         "speed": float(row[2]), "heading": float(row[3]), "accel": float(row[4]), "lane": int(row[5])}
        for i, (vehicle, row) in enumerate(zip(ids, values, strict=True))
    ]  # fmt: skip
