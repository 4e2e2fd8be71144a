"""Bodies of the prompt templates API (``/v1/prompts``); the ``prompt`` field of a chat request is
declared beside it (protocol.requests.PromptReference).

A prompt is a tenant's named, versioned template: a list of chat messages whose content is Jinja2
(rendered in the sandbox of orchestration/sandbox.py) and the typed variables it takes. Versions are
immutable; the prompt's ``current_version`` is the one a request without a version gets.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from strata.protocol.requests import PROMPT_ID_PATTERN, RequestModel, Version

VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_TEMPLATE_CHARS = 32_000  # one message's Jinja source
RESERVED_VARIABLES = frozenset({"context", "chunks"})  # filled by retrieval, never by the caller

VariableType = Literal["string", "integer", "number", "boolean", "array", "object"]
PromptId = Annotated[str, Field(pattern=PROMPT_ID_PATTERN, description="The prompt's id, unique in the tenant.")]
VariableName = Annotated[str, Field(pattern=VARIABLE_PATTERN)]


class PromptVariable(RequestModel):
    """One variable a template takes: its JSON type, and whether the caller must give it."""

    type: VariableType
    required: bool | None = Field(default=None, description="None: required unless a default is given.")
    default: Any = Field(default=None, description="Used when the caller leaves the variable out.")
    description: Annotated[str, Field(max_length=1000)] | None = None

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class PromptMessage(RequestModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)] = Field(
        description="Jinja2 source, rendered in a sandbox with the request's variables."
    )


class CreatePromptVersion(RequestModel):
    """A new version of prompt ``id`` (version 1 creates the prompt); it becomes the current one."""

    id: PromptId
    messages: Annotated[list[PromptMessage], Field(min_length=1, max_length=32)]
    variables: Annotated[dict[VariableName, PromptVariable], Field(max_length=64)] = Field(
        default_factory=dict, description="Declared variables; a template may use no other (but context/chunks)."
    )
    description: Annotated[str, Field(max_length=1000)] | None = None


class RollbackPrompt(RequestModel):
    version: Version | None = Field(
        default=None, description="The version to make current; None: the one before the current one."
    )


class PromptQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    after: str | None = Field(default=None, description="A prompt id: the page starts after it.")


class PromptVersionObject(BaseModel):
    object: Literal["prompt.version"]
    id: str
    version: int
    messages: list[PromptMessage]
    variables: dict[str, PromptVariable]
    description: str | None
    created_at: int


class PromptObject(BaseModel):
    object: Literal["prompt"]
    id: str
    current_version: int = Field(description="The version a request without one gets (moved by rollback).")
    latest_version: int = Field(description="The highest version created.")
    created_at: int
    updated_at: int
    template: PromptVersionObject = Field(description="The current version.")


class PromptList(BaseModel):
    object: Literal["list"]
    data: list[PromptObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class PromptVersionList(BaseModel):
    object: Literal["list"]
    data: list[PromptVersionObject] = Field(description="Every version, newest first.")
    has_more: bool
