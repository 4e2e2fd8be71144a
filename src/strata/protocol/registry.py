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
