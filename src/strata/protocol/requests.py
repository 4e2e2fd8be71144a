"""OpenAI request bodies, validated strictly: an unknown or misspelt field is an error that
names it, rather than a silently ignored setting, and a value of the wrong JSON type (``"5"`` or
``true`` for an integer) is refused rather than coerced - the request is what the schema says."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

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
# OpenAI's types, with the one value Strata supports documented as the range (the validators below
# refuse others with a message that says so).
_ONLY_ONE: dict[str, Any] = {"minimum": 1, "maximum": 1, "description": "Only 1 is supported."}
_ONLY_ZERO: dict[str, Any] = {"minimum": 0, "maximum": 0, "description": "Not supported yet: only 0."}


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


class _GenerationFields(RequestModel):
    model: str = Field(min_length=1)
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    n: Int = Field(default=1, json_schema_extra=_ONLY_ONE)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported; send several requests for several choices")
        return value

    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    # OpenAI's int64 range (a torch generator takes no larger seed).
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1), WHOLE] | None = None
    user: str | None = None
    ignore_eos: bool = Field(default=False, description="Strata extension (as in vLLM): generate past EOS.")
    presence_penalty: float = Field(default=0.0, json_schema_extra=_ONLY_ZERO)
    frequency_penalty: float = Field(default=0.0, json_schema_extra=_ONLY_ZERO)

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _penalties_unsupported(cls, value: float) -> float:
        if value != 0.0:
            raise ValueError("penalties are not supported yet; send 0 or leave it out")
        return value

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


class ChatCompletionRequest(_GenerationFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    retrieval: RetrievalOptions | None = Field(
        default=None,
        description="Strata extension: the last user message searches these vector stores; the chunks found go "
        "into a system message (retrieval.template) and come back as file_citation annotations.",
    )

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_GenerationFields):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[int, Field(ge=1), WHOLE] | None = 16
    echo: Literal[False] = False

    def token_limit(self) -> int | None:
        return self.max_tokens

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
