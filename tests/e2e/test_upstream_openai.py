"""kind: openai end to end: a front `strata serve` whose deployment is a second, real `strata serve`
(an OpenAI-compatible server on loopback serving the shipped chat model), called with the official
openai client. Covers whole and streamed replies with exact usage, the key read from the environment
and kept out of the logs, upstream errors, and a fallback chain while the upstream is down and back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from strata.testing import MetricSamples, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHAT = "strata-chat-tiny"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _write(path: Path, spec: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upstream")


@pytest.fixture(scope="module")
def upstream(state: Path) -> Iterator[ServerProcess]:
    """The provider: a plain Strata serving only the shipped chat model."""
    spec = {
        "name": "provider",
        "models": [{"name": CHAT, "kind": "hf-causal-lm", "path": f"builtin:{CHAT}"}],
        "deployments": [{"name": "chat", "model": CHAT, "batching": {"max_batch_size": 8}}],
        "routes": [{"name": CHAT, "deployment": "chat"}],
    }
    with ServerProcess(_write(state / "provider.yaml", spec)) as server:
        yield server


@pytest.fixture(scope="module")
def front(state: Path, upstream: ServerProcess) -> Iterator[ServerProcess]:
    """Routes: 'remote' (the upstream, falling back to 'local'), 'local' (its own copy of the model)
    and 'remote-bad-key' (the upstream with a wrong key, no fallback)."""
    fast_breaker = {"consecutive_failures": 1, "open_s": 0.5, "max_open_s": 0.5}
    upstream_spec = {"base_url": f"{upstream.url}/v1", "model": CHAT, "api_key_env": "PROVIDER_KEY"}
    spec = {
        "name": "front",
        "models": [
            {"name": "provider-chat", "kind": "openai", "upstream": upstream_spec},
            {"name": "provider-bad-key", "kind": "openai", "upstream": {**upstream_spec, "api_key_env": "WRONG_KEY"}},
            {"name": "local-chat", "kind": "hf-causal-lm", "path": f"builtin:{CHAT}"},
        ],
        "deployments": [
            {"name": "remote", "model": "provider-chat", "breaker": fast_breaker, "retries": {"max_attempts": 1}},
            {"name": "bad-key", "model": "provider-bad-key", "retries": {"max_attempts": 1}},
            {"name": "local", "model": "local-chat"},
        ],
        "routes": [
            {"name": "remote", "deployment": "remote", "fallbacks": ["local"]},
            {"name": "remote-bad-key", "deployment": "bad-key"},
            {"name": "local", "deployment": "local"},
        ],
    }
    env = {"PROVIDER_KEY": upstream.api_key, "WRONG_KEY": "sk-wrong-" + upstream.api_key[-8:]}
    with ServerProcess(_write(state / "front.yaml", spec), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def client(front: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=front.api_key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def direct(upstream: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{upstream.url}/v1", api_key=upstream.api_key, max_retries=0, timeout=60)


def test_chat_is_the_upstream_answer_with_its_usage(client: openai.OpenAI, direct: openai.OpenAI) -> None:
    expected = direct.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0, max_tokens=20)
    reply = client.chat.completions.with_raw_response.create(
        model="remote", messages=QUESTION, temperature=0, max_tokens=20
    )
    assert reply.headers["x-strata-version"] == "remote"
    assert "x-strata-fallback" not in reply.headers
    completion = reply.parse()
    assert completion.choices[0].message.content == expected.choices[0].message.content
    assert completion.choices[0].finish_reason == expected.choices[0].finish_reason
    assert completion.model == "remote"
    assert completion.usage is not None
    assert expected.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        expected.usage.prompt_tokens,
        expected.usage.completion_tokens,
    )


def test_stream_is_passed_through_with_usage(
    client: openai.OpenAI, direct: openai.OpenAI, front: ServerProcess
) -> None:
    before = MetricSamples.scrape(front.url, headers=front.headers)
    whole = direct.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0, max_tokens=24)
    stream = client.chat.completions.create(
        model="remote",
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # streamed, not one blob
    usage = chunks[-1].usage
    assert usage is not None
    assert whole.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
    after = MetricSamples.scrape(front.url, headers=front.headers)
    counted = after.value("strata_tokens_total", deployment="remote", direction="out") - before.value(
        "strata_tokens_total", deployment="remote", direction="out"
    )
    assert counted == usage.completion_tokens


def test_n_choices_are_the_upstreams(client: openai.OpenAI, direct: openai.OpenAI) -> None:
    """n, the seed and penalties go upstream; each choice comes back under its index."""
    open_question = [{"role": "user", "content": "Tell me something about a city."}]
    asked = {"model": "remote", "messages": open_question, "n": 2, "temperature": 1.5, "seed": 11, "max_tokens": 12,
             "presence_penalty": 0.5}  # fmt: skip
    reply = client.chat.completions.create(**asked)  # type: ignore[call-overload]
    reference = direct.chat.completions.create(**{**asked, "model": CHAT})  # type: ignore[call-overload]
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.message.content for c in reply.choices] == [c.message.content for c in reference.choices]
    assert reference.choices[0].message.content != reference.choices[1].message.content  # two samples
    assert reply.usage is not None
    assert reference.usage is not None
    assert reply.usage.completion_tokens == reference.usage.completion_tokens  # the upstream's total, both choices

    stream = client.chat.completions.create(**asked, stream=True)  # type: ignore[call-overload]
    streamed = ["", ""]
    for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == [c.message.content for c in reference.choices]


def test_logprobs_are_the_upstreams(client: openai.OpenAI, direct: openai.OpenAI) -> None:
    asked = {"messages": QUESTION, "temperature": 0, "max_tokens": 6, "logprobs": True, "top_logprobs": 2}
    reply = client.chat.completions.create(model="remote", **asked)  # type: ignore[call-overload]
    reference = direct.chat.completions.create(model=CHAT, **asked)  # type: ignore[call-overload]
    ours, theirs = reply.choices[0].logprobs, reference.choices[0].logprobs
    assert ours is not None
    assert theirs is not None
    assert ours.content
    assert theirs.content
    assert [t.token for t in ours.content] == [t.token for t in theirs.content]
    assert [t.logprob for t in ours.content] == pytest.approx([t.logprob for t in theirs.content], abs=1e-4)
    assert all(len(t.top_logprobs) == 2 for t in ours.content)

    legacy = client.completions.create(model="remote", prompt="The capital of France is", max_tokens=4,
                                       temperature=0, logprobs=2)  # fmt: skip
    assert legacy.choices[0].logprobs is not None
    assert len(legacy.choices[0].logprobs.tokens or []) == legacy.usage.completion_tokens  # type: ignore[union-attr]


def test_a_response_format_is_decoded_upstream(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24}}, "required": ["city"],
              "additionalProperties": False}  # fmt: skip
    reply = client.chat.completions.create(
        model="remote", messages=QUESTION, temperature=0, max_tokens=200,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
    )  # fmt: skip
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", content  # the JSON ended; max_tokens did not cut it
    answer = json.loads(content)  # the tiny model alone would answer in prose: the upstream's grammar held
    assert set(answer) == {"city"}
    assert isinstance(answer["city"], str)


def test_text_completion_goes_upstream(client: openai.OpenAI, direct: openai.OpenAI) -> None:
    expected = direct.completions.create(model=CHAT, prompt="The capital of France", temperature=0, max_tokens=8)
    reply = client.completions.create(model="remote", prompt="The capital of France", temperature=0, max_tokens=8)
    assert reply.choices[0].text == expected.choices[0].text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == expected.usage.completion_tokens


def test_upstream_rejection_is_a_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="remote", messages=QUESTION, max_tokens=1_000_000)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "max_tokens"
    assert "upstream rejected the request" in body["message"]


def test_a_wrong_key_fails_without_leaking_either_key(
    client: openai.OpenAI, front: ServerProcess, upstream: ServerProcess
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="remote-bad-key", messages=QUESTION, max_tokens=4)
    assert "credentials" in str(caught.value)
    wrong = front.env["WRONG_KEY"]
    for text in (str(caught.value), front.logs()):
        assert wrong not in text
        assert upstream.api_key not in text


def test_falls_back_while_the_upstream_is_down_and_returns_after(
    client: openai.OpenAI, upstream: ServerProcess, front: ServerProcess
) -> None:
    """Last in the module: it stops the upstream (and starts it again on the same port)."""
    upstream.stop()
    reply = client.chat.completions.with_raw_response.create(model="remote", messages=QUESTION, max_tokens=8)
    assert reply.headers["x-strata-fallback"] == "remote -> local"
    stream = client.chat.completions.create(model="remote", messages=QUESTION, max_tokens=8, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)  # the fallback streams too
    assert upstream.log_path is not None
    upstream.start(upstream.log_path)  # the provider is back
    deadline = time.monotonic() + 20
    while True:  # the breaker lets a probe through after open_s; the probe's success closes it
        reply = client.chat.completions.with_raw_response.create(model="remote", messages=QUESTION, max_tokens=8)
        if "x-strata-fallback" not in reply.headers:
            break
        assert time.monotonic() < deadline, "the route never returned to the recovered upstream"
        time.sleep(0.2)
    with httpx.Client(base_url=front.url, headers=front.headers) as http:
        assert http.get("/readyz").status_code == 200
