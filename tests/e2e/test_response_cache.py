"""The response cache over real HTTP with the official openai client: hits, isolation between
tenants and keys, deterministic requests only, TTL and size bounds, streamed replays, semantic
lookups, usage rows, and Redis shared by two gateways (or down)."""

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from strata.testing import ServerProcess
from strata.testing.metrics import MetricSamples
from strata.testing.server import free_port

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "apps" / "cache.yaml"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP) as running:
        yield running


Connect = Callable[..., openai.OpenAI]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(server, key=None)``: an openai client of ``server`` (the admin key unless ``key``), closed
    after the test."""
    opened: list[openai.OpenAI] = []

    def open_client(server: ServerProcess, key: str | None = None) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or server.api_key, max_retries=0, timeout=60)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def _key(server: ServerProcess, tenant: str, models: list[str] | None = None) -> str:
    body: dict[str, Any] = {"tenant": tenant, "scopes": ["infer"]}
    if models is not None:
        body["models"] = models
    with server.http() as admin:
        response = admin.post("/v1/admin/keys", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


def _ask(client: openai.OpenAI, question: str, route: str = "chat", **params: Any) -> tuple[str, str]:
    """(x-strata-cache, the answer's text) of a chat request, deterministic unless ``params`` say otherwise."""
    params = {"temperature": 0, "max_tokens": 12, **params}
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": question}], **params
    )
    return raw.headers["x-strata-cache"], raw.parse().choices[0].message.content or ""


def _question() -> str:
    return f"Tell me about request {secrets.token_hex(4)}."  # each test its own: no answer kept by another


def test_a_repeated_request_is_answered_from_the_cache(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    result, answer = _ask(client, question)
    assert result == "miss"
    again, cached = _ask(client, question)
    assert again == "hit"
    assert cached == answer
    other, _ = _ask(client, question, max_tokens=13)  # another sampling parameter: another request
    assert other == "miss"
    samples = MetricSamples.scrape(server.url, server.headers)
    assert samples.value("strata_cache_requests_total", route="chat", result="hit") >= 1
    assert samples.value("strata_cache_requests_total", route="chat", result="miss") >= 2


def test_routes_without_a_cache_send_no_header(server: ServerProcess, connect: Connect) -> None:
    raw = connect(server).chat.completions.with_raw_response.create(
        model="chat-uncached", messages=[{"role": "user", "content": "Hello"}], temperature=0, max_tokens=4
    )
    assert "x-strata-cache" not in raw.headers


def test_no_answer_crosses_tenants(server: ServerProcess, connect: Connect) -> None:
    question = _question()
    first, second = connect(server, _key(server, "tenant-a")), connect(server, _key(server, "tenant-b"))
    assert _ask(first, question)[0] == "miss"
    assert _ask(first, question)[0] == "hit"
    assert _ask(second, question)[0] == "miss"  # the same request from another tenant
    assert _ask(second, question)[0] == "hit"  # which now has its own answer


def test_keys_with_different_allow_lists_do_not_share(server: ServerProcess, connect: Connect) -> None:
    question = _question()
    every_model = connect(server, _key(server, "tenant-c"))
    chat_only = connect(server, _key(server, "tenant-c", models=["chat"]))
    chat_only_too = connect(server, _key(server, "tenant-c", models=["chat"]))
    assert _ask(every_model, question)[0] == "miss"
    assert _ask(chat_only, question)[0] == "miss"  # same tenant, another allow-list
    assert _ask(chat_only_too, question)[0] == "hit"  # same tenant, same allow-list: shared


def test_sampled_requests_are_cached_only_where_the_route_opts_in(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    sampled = {"temperature": 1.0}
    assert _ask(client, question, **sampled)[0] == "miss"
    assert _ask(client, question, **sampled)[0] == "miss"  # never kept: each call samples anew
    assert _ask(client, question, temperature=1.0, seed=5)[0] == "miss"
    assert _ask(client, question, temperature=1.0, seed=5)[0] == "hit"  # a seed makes it deterministic
    assert _ask(client, question, route="chat-sampled", **sampled)[0] == "miss"
    assert _ask(client, question, route="chat-sampled", **sampled)[0] == "hit"


def test_cache_control_no_cache_asks_the_model(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    assert _ask(client, question)[0] == "miss"
    assert _ask(client, question, extra_headers={"Cache-Control": "no-cache"})[0] == "miss"
    assert _ask(client, question)[0] == "hit"


def test_answers_expire_after_their_ttl(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    assert _ask(client, question, route="chat-short")[0] == "miss"
    assert _ask(client, question, route="chat-short")[0] == "hit"
    time.sleep(1.2)  # ttl_s: 1.0
    assert _ask(client, question, route="chat-short")[0] == "miss"


def test_the_cache_keeps_at_most_max_entries(server: ServerProcess, connect: Connect) -> None:
    client = connect(server)
    questions = [_question() for _ in range(3)]
    for question in questions:  # max_entries: 2, so the first is dropped by the third
        assert _ask(client, question, route="chat-short")[0] == "miss"
    assert _ask(client, questions[2], route="chat-short")[0] == "hit"
    assert _ask(client, questions[0], route="chat-short")[0] == "miss"


def test_a_cached_answer_replays_as_a_stream(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    messages = [{"role": "user", "content": question}]
    whole = client.chat.completions.create(model="chat", messages=messages, temperature=0, max_tokens=16)  # type: ignore[arg-type]
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, temperature=0, max_tokens=16, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert raw.headers["x-strata-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_streamed_answer_is_kept_and_text_completions_are_cached(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    messages = [{"role": "user", "content": question}]
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, temperature=0, max_tokens=10, stream=True,  # type: ignore[arg-type]
    )  # fmt: skip
    assert raw.headers["x-strata-cache"] == "miss"
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    hit = client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, temperature=0, max_tokens=10,  # type: ignore[arg-type]
    )  # fmt: skip
    assert hit.headers["x-strata-cache"] == "hit"
    assert hit.parse().choices[0].message.content == streamed
    first = client.completions.with_raw_response.create(model="chat", prompt=question, max_tokens=8, temperature=0)
    second = client.completions.with_raw_response.create(model="chat", prompt=question, max_tokens=8, temperature=0)
    assert (first.headers["x-strata-cache"], second.headers["x-strata-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].text == first.parse().choices[0].text


def test_a_similar_question_is_a_semantic_hit_and_a_different_one_a_miss(
    server: ServerProcess, connect: Connect
) -> None:
    client = connect(server, _key(server, f"semantic-{secrets.token_hex(3)}"))
    result, answer = _ask(client, "What is the capital of France?", route="chat-semantic")
    assert result == "miss"
    similar, cached = _ask(client, "What is the capital of France, please?", route="chat-semantic")  # cosine 0.97
    assert similar == "semantic"
    assert cached == answer
    assert _ask(client, "What is the capital of Italy?", route="chat-semantic")[0] == "miss"  # cosine 0.66
    other_tenant = connect(server, _key(server, f"semantic-{secrets.token_hex(3)}"))
    assert _ask(other_tenant, "What is the capital of France, please?", route="chat-semantic")[0] == "miss"


def test_usage_counts_hits_as_cached_and_bills_them_nothing(server: ServerProcess, connect: Connect) -> None:
    tenant = f"usage-{secrets.token_hex(3)}"
    key = _key(server, tenant)
    client, question = connect(server, key), _question()
    _ask(client, question)
    _ask(client, question)
    _ask(client, question)
    headers = {"Authorization": f"Bearer {key}"}
    rows: list[dict[str, Any]] = []
    for _ in range(50):  # usage is written in bulk every 0.5 s: wait for it, never assert a time
        report = httpx.get(f"{server.url}/v1/usage", params={"period": "day"}, headers=headers).json()
        rows = report["data"]
        if rows and rows[0]["requests"] == 3:
            break
        time.sleep(0.2)
    assert len(rows) == 1
    assert rows[0]["requests"] == 3
    assert rows[0]["cached_requests"] == 2
    miss = connect(server).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=12
    )
    assert miss.usage is not None
    # Only the miss's tokens were billed: the two hits added none.
    assert rows[0]["output_tokens"] == miss.usage.completion_tokens


def _set_weights(server: ServerProcess, weights: dict[str, float]) -> None:
    with server.http() as admin:
        response = admin.put("/v1/admin/routes/chat-versions/traffic", json={"weights": weights})
        assert response.status_code == 200, response.text


def test_a_version_switch_stops_old_answers_matching_and_purges_them(server: ServerProcess, connect: Connect) -> None:
    client, question = connect(server), _question()
    assert _ask(client, question, route="chat-versions")[0] == "miss"
    assert _ask(client, question, route="chat-versions")[0] == "hit"
    _set_weights(server, {"blue": 0, "green": 100})
    try:
        assert _ask(client, question, route="chat-versions")[0] == "miss"  # green: another version, another key
        for _ in range(50):  # the sweep (every second) purges blue's answers now that it has no traffic
            samples = MetricSamples.scrape(server.url, server.headers)
            if samples.value("strata_cache_entries", route="chat-versions") == 1:  # green's answer only
                break
            time.sleep(0.1)
        assert samples.value("strata_cache_entries", route="chat-versions") == 1
    finally:
        _set_weights(server, {"blue": 100, "green": 0})
    assert _ask(client, question, route="chat-versions")[0] == "miss"  # blue's answer was purged


def _redis_app(tmp_path: Path, redis_url: str, namespace: str) -> Path:
    spec = yaml.safe_load(APP.read_text())
    spec["store"] = {"redis_url": redis_url}
    spec["cache"] = {"namespace": namespace, "redis_timeout_ms": 200}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_two_gateways_share_answers_through_redis(tmp_path: Path, connect: Connect) -> None:
    path = _redis_app(tmp_path, REDIS_URL, f"test-cache-{secrets.token_hex(6)}")  # no other run shares it
    admin_key = f"sk-strata-test-{secrets.token_hex(16)}"
    with ServerProcess(path, api_key=admin_key) as first, ServerProcess(path, api_key=admin_key) as second:
        question = _question()
        result, answer = _ask(connect(first), question)
        assert result == "miss"
        for _ in range(50):  # the answer is written to Redis in the background: wait for it
            shared, cached = _ask(connect(second), question)
            if shared == "hit":
                break
            time.sleep(0.1)
        assert shared == "hit"
        assert cached == answer


@pytest.mark.slow
def test_with_redis_down_requests_are_answered_by_the_model(tmp_path: Path, connect: Connect) -> None:
    path = _redis_app(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "test-cache-down")  # nothing listens
    with ServerProcess(path) as gateway:
        client, question = connect(gateway), _question()
        first = _ask(client, question)
        second = _ask(client, question)
        assert (first[0], second[0]) == ("miss", "miss")
        assert first[1] == second[1]  # the same deterministic answer, from the model both times
        samples = MetricSamples.scrape(gateway.url, gateway.headers)
        assert samples.value("strata_cache_errors") >= 1
