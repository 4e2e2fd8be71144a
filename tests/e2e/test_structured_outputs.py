"""response_format through the official openai client: every reply of the shipped tiny model, greedy,
sampled or streamed, parses as JSON and validates against its schema (grammar-constrained decoding)."""

import json
from typing import Any

import jsonschema
import openai
import pytest

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e

CHAT = "strata-chat-tiny"
PROMPTS = ["What is the capital of France?", "Tell me a joke."]
SCHEMAS: dict[str, dict[str, Any]] = {
    "city": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 24},
            "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    },
    "verdict": {
        "type": "object",
        "properties": {
            "answer": {"enum": ["yes", "no", "maybe"]},
            "confident": {"type": "boolean"},
        },
        "required": ["answer", "confident"],
        "additionalProperties": False,
    },
    "tags": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 3}
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "detail": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {"code": {"type": "integer", "minimum": 0, "maximum": 999}},
                        "required": ["code"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "required": ["ok", "detail"],
        "additionalProperties": False,
    },
}
MAX_TOKENS = 200


@pytest.fixture(scope="module")
def client(default_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0, timeout=60)


def _schema_format(name: str) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True}}


def _check(text: str | None, finish_reason: str | None, schema: dict[str, Any]) -> None:
    assert finish_reason == "stop", (finish_reason, text)  # the JSON ended; max_tokens did not cut it
    jsonschema.validate(json.loads(text or ""), schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_reply_matches_its_schema(client: openai.OpenAI, name: str) -> None:
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        greedy = client.chat.completions.create(
            model=CHAT, messages=messages, temperature=0, max_tokens=MAX_TOKENS, response_format=_schema_format(name)
        )
        _check(greedy.choices[0].message.content, greedy.choices[0].finish_reason, SCHEMAS[name])
        sampled = client.chat.completions.create(
            model=CHAT, messages=messages, temperature=1.3, seed=len(prompt), n=3, max_tokens=MAX_TOKENS,
            response_format=_schema_format(name),
        )  # fmt: skip
        for choice in sampled.choices:
            _check(choice.message.content, choice.finish_reason, SCHEMAS[name])
        texts, finishes = ["", ""], ["", ""]
        stream = client.chat.completions.create(
            model=CHAT, messages=messages, temperature=1.0, seed=7, n=2, max_tokens=MAX_TOKENS, stream=True,
            response_format=_schema_format(name),
        )  # fmt: skip
        for chunk in stream:
            for c in chunk.choices:
                texts[c.index] += c.delta.content or ""
                finishes[c.index] = c.finish_reason or finishes[c.index]
        for text, finish in zip(texts, finishes, strict=True):
            _check(text, finish, SCHEMAS[name])


# What may complete a JSON text cut short after its open strings and brackets are closed: a missing
# value after a key or ':', a key after ',', or the rest of a literal.
_FILLERS = ("", ":0", "0", '"k":0', "ue", "rue", "e", "alse", "lse", "se", "ull", "ll", "l")


def _is_json_prefix(text: str) -> bool:
    """A text cut short by max_tokens: JSON whose only fault is that it ends too early."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    head = text + ("n" if escaped else "") + ('"' if in_string else "")
    closers = "".join(reversed(stack))
    for filler in _FILLERS:
        try:
            json.loads(head + filler + closers)
        except json.JSONDecodeError:
            continue
        return True
    return False


def test_json_object_replies_are_objects_or_cut_short(client: openai.OpenAI) -> None:
    # json_object allows any object, strings of any length included; this model never learnt JSON and
    # may write prose inside a string until max_tokens ends it, as OpenAI documents for finish "length".
    finished = 0
    for prompt in PROMPTS[:2]:
        reply = client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": prompt}], temperature=1.0, seed=1, n=4,
            max_tokens=60, response_format={"type": "json_object"},
        )  # fmt: skip
        for choice in reply.choices:
            text = choice.message.content or ""
            assert text.startswith("{")
            if choice.finish_reason == "stop":
                assert isinstance(json.loads(text), dict)
                finished += 1
            else:
                assert choice.finish_reason == "length"
                assert _is_json_prefix(text), text
    assert finished > 0


def test_unconstrained_replies_are_unchanged(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    plain = client.chat.completions.create(model=CHAT, messages=messages, temperature=0)
    text = client.chat.completions.create(
        model=CHAT, messages=messages, temperature=0, response_format={"type": "text"}
    )
    assert plain.choices[0].message.content == text.choices[0].message.content == "The capital of France is Paris."


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}},
            "response_format.json_schema.schema",
        ),
        ({"type": "json_schema"}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}},
            "response_format.json_schema.name",
        ),
        ({"type": "yaml"}, "response_format"),
    ],
)
def test_bad_response_format_is_named(client: openai.OpenAI, response_format: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            response_format=response_format,  # type: ignore[arg-type]
        )
    assert error.value.body["param"] == param, error.value.body  # type: ignore[index]
