"""The workflow engine's tables: jobs, their steps, progress events, artifacts, files and batch results.

Times are epoch seconds (floats): one comparison semantics on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from strata.store import Base
from strata.workflows.records import JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPENSATING)  # a worker may claim these
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.DEAD_LETTER, JobStatus.CANCELLED)


class Job(Base):
    __tablename__ = "workflow_jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "idempotency_key", name="uq_workflow_jobs_tenant_idempotency_key"),
        Index("ix_workflow_jobs_claim", "status", "available_at"),
        Index("ix_workflow_jobs_tenant_created", "tenant", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    input: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    priority: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # a reused idempotency key must carry the same request
    status: Mapped[str] = mapped_column(String(16))  # a JobStatus value
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # where compensation ends: a JobStatus
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When a worker may take it: now or after a backoff when queued, the lease's end while held.
    available_at: Mapped[float] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)  # fences a stale holder's writes


class Step(Base):
    __tablename__ = "workflow_steps"

    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("workflow_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # a StepStatus value
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    __tablename__ = "workflow_events"
    __table_args__ = (Index("ix_workflow_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)


class Artifact(Base):
    __tablename__ = "workflow_artifacts"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    artifact_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the content's SHA-256
    tenant: Mapped[str] = mapped_column(String(128))
    step: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)


class File(Base):
    """A file of the OpenAI Files API: its content lives in the artifact store under its SHA-256."""

    __tablename__ = "workflow_files"
    __table_args__ = (Index("ix_workflow_files_tenant", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))  # shown back only; never used as a storage name
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class BatchResult(Base):
    """One finished request of a batch: persisted as it finishes, so a resumed batch skips it."""

    __tablename__ = "workflow_batch_results"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(255))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
