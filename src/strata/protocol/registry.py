"""The JSON bodies of the model registry's admin routes (documentation and contract checks only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class RegistryFile(BaseModel):
    path: str
    sha256: str
    bytes: int


class RegistryVersion(BaseModel):
    object: Literal["registry.version"]
    model: str
    version: int
    task: str
    framework: str
    metrics: dict[str, float]
    source_hash: str | None
    data_hash: str | None
    signature: str
    bytes: int
    files: list[RegistryFile]
    stages: list[str]
    created_at: int
    created_by: str | None


class RegistryVersionList(BaseModel):
    object: Literal["list"]
    data: list[RegistryVersion]


class RegistryModel(BaseModel):
    object: Literal["registry.model"]
    name: str
    versions: int
    latest: int
    stages: dict[str, int]


class ServedFromRegistry(BaseModel):
    deployment: str
    reference: str
    version: int | None
    signature: str | None


class RegistryModelList(BaseModel):
    object: Literal["list"]
    data: list[RegistryModel]
    serving: list[ServedFromRegistry]


class Reloaded(BaseModel):
    deployment: str
    version: int | None
    previous: int | None
    error: str | None


class CanaryDeployment(BaseModel):
    deployment: str
    canary: str | None


class CanaryRouteEvent(BaseModel):
    after_s: float
    what: str


class CanaryRollout(BaseModel):
    stable: str
    canary: str
    phase: Literal["running", "promoted", "rolled_back"]
    canary_weight: float
    step: int
    steps: list[float]
    window_s: float
    reason: str
    elapsed_s: float
    events: list[CanaryRouteEvent]


class CanaryRoute(BaseModel):
    route: str
    stable: str
    canary: str
    rollout: CanaryRollout | None


class RegistryCanary(BaseModel):
    """A promotion going through a canary: the stage moves to ``version`` only when it completes."""

    object: Literal["registry.canary"]
    model: str
    stage: str
    version: int
    previous: int
    phase: Literal["loading", "running", "completed", "rolled_back", "failed"]
    reason: str
    started_at: int
    ended_at: int | None
    deployments: list[CanaryDeployment]
    routes: list[CanaryRoute]


class RegistryStage(BaseModel):
    object: Literal["registry.stage"]
    model: str
    stage: str
    version: int
    previous: int | None
    history: list[int]
    updated_at: int
    updated_by: str | None
    reloaded: list[Reloaded]
    canary: RegistryCanary | None
