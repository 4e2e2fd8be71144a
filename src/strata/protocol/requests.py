"""OpenAI request bodies, validated strictly: an unknown or misspelt field is an error that
names it, rather than a silently ignored setting, and a value of the wrong JSON type (``"5"`` or
``true`` for an integer) is refused rather than coerced - the request is what the schema says."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from strata.data.vector_filters import Filter


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; strict validation alone would refuse it.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A JSON integer: 2 or 2.0, never "2" or true. Bounds go before it, so they reach the JSON Schema:
# ``Annotated[int, Field(ge=1), WHOLE]``.
WHOLE = BeforeValidator(_whole_number)
Int = Annotated[int, WHOLE]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
Stop = str | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
MAX_CHOICES = 16  # n: each choice is a row of the running batch, so a deployment's max_running caps it too
MAX_TOP_LOGPROBS = 20  # chat's top_logprobs, as OpenAI
MAX_COMPLETION_LOGPROBS = 5  # the legacy completions endpoint's logprobs, as OpenAI


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(RequestModel):
    include_usage: bool = False


class TextPart(RequestModel):
    type: Literal["text"]
    text: str


class ChatMessage(RequestModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class JsonSchemaSpec(RequestModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    json_schema: dict[str, Any] = Field(
        default_factory=dict, alias="schema", description="The JSON Schema every reply must match."
    )
    strict: bool | None = Field(default=None, description="Accepted; replies always match the schema.")


class TextFormat(RequestModel):
    type: Literal["text"]


class JsonObjectFormat(RequestModel):
    type: Literal["json_object"]


class JsonSchemaFormat(RequestModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


def _format_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"type={kind}" if kind in ("text", "json_object", "json_schema") else None


# Chosen by "type"; the tags are named "type=..." so an error's location can drop them (users never
# wrote them), naming e.g. response_format.json_schema.name.
ResponseFormat = Annotated[
    Annotated[TextFormat, Tag("type=text")]
    | Annotated[JsonObjectFormat, Tag("type=json_object")]
    | Annotated[JsonSchemaFormat, Tag("type=json_schema")],
    Discriminator(
        _format_type,
        custom_error_type="invalid_format_type",
        custom_error_message="type must be 'text', 'json_object' or 'json_schema'",
    ),
]


class _GenerationFields(RequestModel):
    model: str = Field(min_length=1)
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES), WHOLE] = Field(
        default=1, description="Choices to generate from one prompt (run once); each takes a batch slot."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    # OpenAI's int64 range (a torch generator takes no larger seed).
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1), WHOLE] | None = None
    user: str | None = None
    ignore_eos: bool = Field(default=False, description="Strata extension (as in vLLM): generate past EOS.")
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class RetrievalOptions(RequestModel):
    """Strata extension: ground the answer in vector stores (retrieval-augmented generation)."""

    vector_store_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=8)
    ]
    top_k: Annotated[int, Field(ge=1, le=20), WHOLE] = Field(default=4, description="Chunks placed into the prompt.")
    min_score: Annotated[float, Field(ge=-1.0, le=1.0)] = Field(
        default=0.0, description="Chunks less similar than this (cosine) are left out."
    )
    filters: Filter | None = Field(default=None, description="Metadata filters, as in vector store search.")


PROMPT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Version = Annotated[int, Field(ge=1, le=2**31 - 1), WHOLE]


class PromptReference(RequestModel):
    """Strata extension of a chat request: its first messages come from a stored prompt template."""

    id: str = Field(pattern=PROMPT_ID_PATTERN, description="The prompt's id (the tenant's own).")
    version: Version | None = Field(default=None, description="None: the prompt's current version.")
    variables: Annotated[dict[str, Any], Field(max_length=64)] = Field(
        default_factory=dict, description="Values of the variables the template declares, checked by type."
    )


class ChatCompletionRequest(_GenerationFields):
    prompt: PromptReference | None = Field(
        default=None,
        description="Strata extension: render this stored prompt template; the request's messages follow its "
        "messages (and may then be empty).",
    )
    messages: Annotated[list[ChatMessage], Field(max_length=4096)] = Field(
        description="At least one, unless a prompt template gives the first messages."
    )

    @field_validator("messages")
    @classmethod
    def _messages_or_prompt(cls, value: list[ChatMessage], info: ValidationInfo) -> list[ChatMessage]:
        if not value and info.data.get("prompt") is None:
            raise ValueError("at least one message is needed (or a prompt template that gives them)")
        return value

    max_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    response_format: ResponseFormat | None = Field(
        default=None, description="json_object or json_schema: the reply is JSON (matching the schema), guaranteed."
    )
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS), WHOLE] | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs set to true")
        return value

    retrieval: RetrievalOptions | None = Field(
        default=None,
        description="Strata extension: the last user message searches these vector stores; the chunks found go "
        "into a system message (retrieval.template) and come back as file_citation annotations.",
    )

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def logprob_count(self) -> int | None:
        """None: no log-probabilities; k: the chosen token's and the k most likely."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_GenerationFields):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[int, Field(ge=1), WHOLE] | None = 16
    echo: Literal[False] = False
    logprobs: Annotated[int, Field(ge=0, le=MAX_COMPLETION_LOGPROBS), WHOLE] | None = None

    def token_limit(self) -> int | None:
        return self.max_tokens

    def logprob_count(self) -> int | None:
        return self.logprobs

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(RequestModel):
    model: str = Field(min_length=1)
    input: Annotated[
        str | Annotated[list[str], Field(min_length=1, max_length=2048)],
        # As validated: no empty string, alone or in the list (the validator names the field).
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 2048},
                ]
            }
        ),
    ]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1), WHOLE] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _no_empty_strings(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if any(text == "" for text in texts):
            raise ValueError("input must not contain empty strings")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class PredictRequest(RequestModel):
    inputs: Annotated[list[Any], Field(min_length=1, max_length=4096)]
