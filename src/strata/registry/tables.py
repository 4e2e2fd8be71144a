"""The model registry's tables: one row per pushed version, one per (model, stage) pointer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from strata.store import Base


class RegistryVersion(Base):
    """An immutable version of a model: its files are content-addressed blobs named by ``manifest``."""

    __tablename__ = "registry_versions"
    __table_args__ = (UniqueConstraint("model", "version", name="uq_registry_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(32))
    framework: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    source_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    data_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # [{"path": "config.json", "sha256": "...", "bytes": 612}, ...] sorted by path
    manifest: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(64))  # SHA-256 over the canonical manifest
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class RegistryStage(Base):
    """Which version a stage of a model names now, and the versions it named before (newest last), so
    that a rollback is one pop."""

    __tablename__ = "registry_stages"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    history: Mapped[list[int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
