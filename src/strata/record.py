"""The request record: the one description of a request, filled by every layer it crosses.

The gateway opens one per HTTP request; a job step or a batch line opens one the same way, with its
own ``kind``. Each layer writes what it knows (the access layer the caller, the router the version
that served, the batcher when the batch formed, the handler the tokens) and whatever observes
requests (metrics, usage, audit, traces) reads the finished record; nothing sniffs headers or scope
keys. Stage times are ``time.perf_counter()`` readings, 0.0 for a stage the request never reached.

The record travels with the request's task as a context variable, so the batcher, which serves many
requests from its own task, stamps the records of the items it takes without any argument threading.
"""

from __future__ import annotations

import hashlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum

from strata.principal import ANONYMOUS, Principal


class RecordKind(StrEnum):
    HTTP = "http"
    JOB_STEP = "job_step"
    BATCH_LINE = "batch_line"


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """What one guard did about one stage of a request (kinds and counts, never the text it found)."""

    guard: str
    stage: str  # input | output
    action: str  # block | redact | flag
    kinds: tuple[str, ...]  # the kinds found, sorted, each once
    count: int  # how many findings

    def detail(self) -> dict[str, object]:
        return {"guard": self.guard, "stage": self.stage, "action": self.action, "kinds": list(self.kinds),
                "count": self.count}  # fmt: skip


@dataclass(slots=True, eq=False)
class RequestRecord:
    method: str  # the HTTP method, or JOB for work that did not arrive over HTTP
    path: str  # the path as sent (jobs: /v1/jobs/{id}/steps/{step})
    route: str = "other"  # the route's template (a bounded metric label), e.g. /v1/models/{model}/predict
    kind: RecordKind = RecordKind.HTTP
    caller: Principal = ANONYMOUS
    model: str | None = None  # the model the request named
    served_route: str | None = None  # what actually answered (a fallback or canary may differ)
    served_version: str | None = None
    deployment: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    status: int = 0  # 0 until a response starts
    error_code: str | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    request_sha256: str | None = None
    response_sha256: str | None = None
    prompt: str | None = None  # kept only where the tenant's policy allows
    data_level: str | None = None  # what the tenant's data policy keeps: metadata | full (None: nothing)
    kept_prompt: str | None = None  # policy 'full': the request as the model saw it (sealed before it is stored)
    kept_output: str | None = None  # policy 'full': the response body as sent
    # The stored prompt template that built the prompt, if any (a response cache keys on both).
    prompt_id: str | None = None
    prompt_version: int | None = None
    compute_s: float | None = None  # model time billed when not the request's own latency (job steps)
    cost: float = 0.0  # by the deployment's price, in its currency units (set by the access layer)
    batch_size: int = 0  # how many requests the batch that served this one held (0: not batched)
    finish_reason: str | None = None  # why a generation stopped (stop, length)
    cache: str | None = None  # answered from the response cache: hit | semantic (None: by a model)
    replica: str | None = None  # the replica that served, where it reports itself (a Ray replica actor)
    node: str | None = None  # the cluster node that replica runs on
    # W3C trace context: the request's own span (its root span) and the caller's span, if one was sent.
    trace_id: int = 0
    span_id: int = 0
    parent_span_id: int = 0
    links: tuple[tuple[int, int], ...] = ()  # (trace id, span id) it follows from: a job step, its submitter
    attempt: int = 0  # a job step's attempt (1 for the first)
    trace_flags: int = 1  # bit 0: sampled (a caller may ask that its trace not be exported)
    guards: list[GuardDecision] | None = None  # what each guard that found something did (None: nothing found)
    guard_s: float = 0.0  # time spent in guards (their regexes and any guard model's call)
    # Stage times (perf_counter seconds).
    received: float = field(default_factory=time.perf_counter)
    parsed: float = 0.0
    authorised: float = 0.0
    features_read: float = 0.0  # the request's features were read from a feature store (autonomy plans)
    admitted: float = 0.0
    queued: float = 0.0
    batch_formed: float = 0.0
    inference_started: float = 0.0
    inference_ended: float = 0.0
    first_token: float = 0.0  # generation: the first token came out of the model
    first_byte: float = 0.0
    last_byte: float = 0.0
    received_at: float = field(default_factory=time.time)  # wall clock, for rows and logs

    @property
    def tenant(self) -> str:
        return self.caller.tenant

    @property
    def latency_s(self) -> float:
        end = self.last_byte or time.perf_counter()
        return end - self.received

    @property
    def billed_s(self) -> float:
        return self.latency_s if self.compute_s is None else self.compute_s

    @property
    def template(self) -> str | None:
        """``id@version`` of the prompt template that built the prompt (audit rows carry it)."""
        return None if self.prompt_id is None else f"{self.prompt_id}@{self.prompt_version}"

    def served_as(self) -> str | None:
        """``route@version`` as served, else the model the request named."""
        if self.served_route is not None and self.served_version is not None:
            return f"{self.served_route}@{self.served_version}"
        return self.model

    def stages_ms(self) -> dict[str, float]:
        """Each reached stage, in ms since the request was received (for logs, traces and audit)."""
        stages = {}
        for name in _STAGES:
            value = getattr(self, name)
            if value:
                stages[name] = round((value - self.received) * 1000, 3)
        return stages

    def hash_request(self, body: bytes) -> None:
        self.request_bytes = len(body)
        self.request_sha256 = hashlib.sha256(body).hexdigest() if body else None


_STAGES = (
    "parsed",
    "authorised",
    "features_read",
    "admitted",
    "queued",
    "batch_formed",
    "inference_started",
    "inference_ended",
    "first_token",
    "first_byte",
    "last_byte",
)

current_record: ContextVar[RequestRecord | None] = ContextVar("strata_request_record", default=None)
"""The record of the request the running task serves (None outside a request)."""
