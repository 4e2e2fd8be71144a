"""kind: llama-cpp end to end: the shipped chat model as GGUF (8-bit and 4-bit, in the repo) served by
llama.cpp behind Strata's gateway, whole and streamed, through the official openai client. Skipped,
saying why, where llama-cpp-python (the llama-cpp extra, compiled at install) is absent."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed: pip install 'strata[llama-cpp]' (compiles llama.cpp) to test it",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = {
        "name": "gguf",
        "models": [
            {"name": f"chat-{bits}", "kind": "llama-cpp", "path": f"builtin:strata-chat-tiny-{bits}"}
            for bits in ("q8_0", "q4_0")
        ],
        "deployments": [{"name": f"chat-{bits}", "model": f"chat-{bits}", "max_queue": 4} for bits in ("q8_0", "q4_0")],
        "routes": [{"name": f"chat-{bits}", "deployment": f"chat-{bits}"} for bits in ("q8_0", "q4_0")],
    }
    path: Path = tmp_path_factory.mktemp("gguf") / "gguf.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=60)


@pytest.mark.parametrize("route", ["chat-q8_0", "chat-q4_0"])
def test_quantized_model_answers_like_the_original(client: openai.OpenAI, route: str) -> None:
    reply = client.chat.completions.create(model=route, messages=QUESTION, temperature=0, max_tokens=16)
    assert reply.choices[0].message.content == "The capital of France is Paris."  # what the fp32 model answers
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_streams_token_by_token_with_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="chat-q8_0", messages=QUESTION, temperature=0, max_tokens=16)
    stream = client.chat.completions.create(
        model="chat-q8_0",
        messages=QUESTION,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_length_limit_and_text_completion(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="chat-q4_0", prompt="Once upon a time", max_tokens=5, temperature=0)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5


def test_too_long_a_prompt_is_a_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat-q8_0", messages=[{"role": "user", "content": "word " * 2000}], max_tokens=4
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "messages"
