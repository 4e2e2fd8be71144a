from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Telemetry(_message.Message):
    __slots__ = ("vehicle_id", "timestamp", "x", "y", "speed", "heading", "accel", "lane")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    ACCEL_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    timestamp: float
    x: float
    y: float
    speed: float
    heading: float
    accel: float
    lane: int
    def __init__(self, vehicle_id: _Optional[str] = ..., timestamp: _Optional[float] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., speed: _Optional[float] = ..., heading: _Optional[float] = ..., accel: _Optional[float] = ..., lane: _Optional[int] = ...) -> None: ...

class Obstacle(_message.Message):
    __slots__ = ("x", "y", "radius")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    radius: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., radius: _Optional[float] = ...) -> None: ...

class PlanAsk(_message.Message):
    __slots__ = ("vehicle_id", "obstacles", "alternatives")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    OBSTACLES_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    obstacles: _containers.RepeatedCompositeFieldContainer[Obstacle]
    alternatives: int
    def __init__(self, vehicle_id: _Optional[str] = ..., obstacles: _Optional[_Iterable[_Union[Obstacle, _Mapping]]] = ..., alternatives: _Optional[int] = ...) -> None: ...

class DriveRequest(_message.Message):
    __slots__ = ("id", "events", "plan")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    id: str
    events: _containers.RepeatedCompositeFieldContainer[Telemetry]
    plan: PlanAsk
    def __init__(self, id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[Telemetry, _Mapping]]] = ..., plan: _Optional[_Union[PlanAsk, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("index", "kind", "cost", "clearance_m", "progress_m", "comfort", "waypoints", "waypoints_local")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CLEARANCE_M_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_M_FIELD_NUMBER: _ClassVar[int]
    COMFORT_FIELD_NUMBER: _ClassVar[int]
    WAYPOINTS_FIELD_NUMBER: _ClassVar[int]
    WAYPOINTS_LOCAL_FIELD_NUMBER: _ClassVar[int]
    index: int
    kind: str
    cost: float
    clearance_m: float
    progress_m: float
    comfort: float
    waypoints: _containers.RepeatedCompositeFieldContainer[Point]
    waypoints_local: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, index: _Optional[int] = ..., kind: _Optional[str] = ..., cost: _Optional[float] = ..., clearance_m: _Optional[float] = ..., progress_m: _Optional[float] = ..., comfort: _Optional[float] = ..., waypoints: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., waypoints_local: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("vehicle_id", "collision_free", "chosen", "alternatives", "waypoint_dt_s", "route", "model_version", "window_end", "latency_ms")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    COLLISION_FREE_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    WAYPOINT_DT_S_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    collision_free: bool
    chosen: Candidate
    alternatives: _containers.RepeatedCompositeFieldContainer[Candidate]
    waypoint_dt_s: float
    route: str
    model_version: str
    window_end: float
    latency_ms: float
    def __init__(self, vehicle_id: _Optional[str] = ..., collision_free: _Optional[bool] = ..., chosen: _Optional[_Union[Candidate, _Mapping]] = ..., alternatives: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., waypoint_dt_s: _Optional[float] = ..., route: _Optional[str] = ..., model_version: _Optional[str] = ..., window_end: _Optional[float] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class Ingested(_message.Message):
    __slots__ = ("accepted", "late", "duplicate")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    late: int
    duplicate: int
    def __init__(self, accepted: _Optional[int] = ..., late: _Optional[int] = ..., duplicate: _Optional[int] = ...) -> None: ...

class Refused(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DriveResponse(_message.Message):
    __slots__ = ("id", "ingested", "plan", "refused")
    ID_FIELD_NUMBER: _ClassVar[int]
    INGESTED_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    id: str
    ingested: Ingested
    plan: Plan
    refused: Refused
    def __init__(self, id: _Optional[str] = ..., ingested: _Optional[_Union[Ingested, _Mapping]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., refused: _Optional[_Union[Refused, _Mapping]] = ...) -> None: ...
