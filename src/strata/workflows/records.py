"""The typed records the workflow engine and its store exchange: job and step states as read,
what a worker asks the store to write, and what a claim hands out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job is. The values are what the database stores and the API shows."""

    QUEUED = "queued"  # waiting for a worker (new, or released until its retry is due)
    RUNNING = "running"
    COMPENSATING = "compensating"  # undoing what its steps did; it then settles as its ``outcome``
    SUCCEEDED = "succeeded"
    DEAD_LETTER = "dead_letter"  # a step failed for good
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where one step of a job is. The values are what the database stores and the API shows."""

    PENDING = "pending"  # not started, or failed with a retry to come
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # for good: no attempt is left, or the error is not worth retrying
    COMPENSATED = "compensated"


class LeaseLost(Exception):
    """This worker no longer holds the job (its lease expired and another worker claimed it)."""


@dataclass(frozen=True, slots=True)
class StepState:
    name: str
    position: int
    status: StepStatus
    attempts: int
    output: Any
    error: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class JobState:
    id: str
    tenant: str
    key_id: str | None
    pipeline: str
    input: Any
    priority: int
    idempotency_key: str | None
    request_hash: str
    status: JobStatus
    outcome: JobStatus | None  # where compensation ends: dead_letter or cancelled
    cancel_requested: bool
    error: str | None
    result: Any
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class NewJob:
    tenant: str
    key_id: str | None
    pipeline: str
    input: Any
    steps: Sequence[str]
    priority: int = 0
    idempotency_key: str | None = None
    request_hash: str = ""
    job_id: str | None = None  # None: a fresh random id


@dataclass(frozen=True, slots=True)
class Claim:
    job: JobState
    owner: str
    token: str
    steps: dict[str, StepState]  # as they were when claimed
    started: tuple[str, ...] = ()  # steps the claim itself started (attempt counted)


FirstSteps = Callable[[JobState, dict[str, StepState]], Sequence[str]]


@dataclass(frozen=True, slots=True)
class NewArtifact:
    artifact_id: str
    bytes: int
    media_type: str


@dataclass(frozen=True, slots=True)
class StepDone:
    name: str
    output: Any
    artifacts: Sequence[NewArtifact] = ()


@dataclass(frozen=True, slots=True)
class StepFailed:
    name: str
    error: str
    final: bool  # no retry follows: the step stays failed
    retry_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class JobChange:
    """What happens to the job row in the same transaction as its steps' changes."""

    status: JobStatus
    event: str
    result: Any = None
    error: str | None = None
    outcome: JobStatus | None = None
    release_at: float | None = None  # give up the lease; another worker may take it from then on
    finished: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Advanced:
    cancel_requested: bool
    attempts: dict[str, int]  # the attempt number of each step just started
