"""The official openai client against a real `strata serve` on loopback, default app."""

import numpy as np
import openai
import pytest

from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path
from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e

CHAT = "strata-chat-tiny"
NO_CACHE = {"Cache-Control": "no-cache"}  # answered by the model, never by the response cache
EMBED = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def client(default_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0, timeout=60)


def test_lists_models(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {CHAT, EMBED}
    assert client.models.retrieve(CHAT).id == CHAT


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "The capital of France is Paris."  # the shipped model learnt its corpus
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.model == CHAT


def test_streaming_chat_matches_the_whole_reply(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hello!"}]
    whole = client.chat.completions.create(model=CHAT, messages=messages, temperature=0, max_tokens=40)
    stream = client.chat.completions.create(
        model=CHAT,
        messages=messages,
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole.choices[0].message.content
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_max_tokens_and_stop(client: openai.OpenAI) -> None:
    capped = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Tell me a joke."}],
        max_tokens=3,
        extra_body={"ignore_eos": True},
    )
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None
    assert capped.usage.completion_tokens == 3
    free = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is Strata?"}], temperature=0, max_tokens=30
    )
    text = free.choices[0].message.content or ""
    stop = text.strip().split()[1] if len(text.split()) > 1 else text[:2]
    stopped = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What is Strata?"}],
        temperature=0,
        max_tokens=30,
        stop=[stop],
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stop not in (stopped.choices[0].message.content or "")
    assert text.startswith(stopped.choices[0].message.content or "")


def test_seeded_sampling_is_reproducible(client: openai.OpenAI) -> None:
    def ask() -> str | None:
        reply = client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Say something."}],
            temperature=1.0,
            seed=7,
            max_tokens=20,
            extra_headers=NO_CACHE,  # the model's own reproducibility, not the response cache's
        )
        return reply.choices[0].message.content

    assert ask() == ask()


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=CHAT, prompt="Strata is", max_tokens=8, temperature=0)
    assert reply.object == "text_completion"
    assert reply.choices[0].text
    streamed = client.completions.create(model=CHAT, prompt="Strata is", max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == reply.choices[0].text


def test_embeddings_match_the_model_in_process(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "Serving models is fun.", "A third sentence."]
    served = client.embeddings.create(model=EMBED, input=texts)  # the client asks for base64
    as_floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    local = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2")).predict_batch(texts)
    assert [d.index for d in served.data] == [0, 1, 2]
    for item, other, reference in zip(served.data, as_floats.data, local, strict=True):
        vector = np.array(item.embedding)
        assert vector.shape == (384,)
        assert np.allclose(vector, reference.vector, atol=1e-5)
        assert np.allclose(vector, np.array(other.embedding), atol=1e-6)
    assert served.usage.prompt_tokens == sum(r.tokens for r in local)
    single = client.embeddings.create(model=EMBED, input="just one")
    assert len(single.data) == 1


def test_errors_come_back_as_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as wrong_task:
        client.embeddings.create(model=CHAT, input="hi")
    assert wrong_task.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad_value:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], temperature=7)
    assert bad_value.value.body["param"] == "temperature"  # type: ignore[index]
