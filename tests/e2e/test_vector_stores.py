"""Files and vector stores through the official openai client, against `strata serve` with the default
app: upload, list, delete; stores ingesting text, Markdown, JSON Lines and HTML with the shipped MiniLM;
search with filters; retrieval in chat with citations; tenants kept apart; bad input named."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from strata.apps import default_app_path
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # its own server: a model load

DOCS = {
    "cooking.txt": "To bake bread, mix flour, water, salt and yeast. Knead the dough, let it rise for two hours, "
    "then bake it in a hot oven until the crust is brown.",
    "rockets.md": "# Rockets\n\nA rocket engine burns fuel with an oxidiser and throws the exhaust backwards; "
    "the thrust lifts the launch vehicle into orbit around the Earth.",
    "cats.jsonl": '{"text": "Cats sleep for most of the day and purr when they are content."}\n'
    '{"text": "A kitten drinks milk and plays with string."}\n',
    "tides.html": "<html><head><style>p{color:red}</style></head><body><h1>Tides</h1><p>The Moon's gravity "
    "pulls the oceans, making high and low tides twice a day.</p><script>var x = 1;</script></body></html>",
}


RAG_PIPELINE = {
    "name": "rag",
    "steps": [
        {"name": "find", "kind": "retrieve", "top_k": 2},
        {"name": "answer", "kind": "generate", "model": "strata-chat-tiny", "max_tokens": 4,
         "prompt": "{{ steps.find.context }}\n\nQuestion: {{ input.query }}"},
    ],
    "output": "find",
}  # fmt: skip


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default app (its chat and MiniLM embedding models) with a retrieve-then-generate pipeline."""
    spec = yaml.safe_load(default_app_path().read_text())
    spec["pipelines"] = [RAG_PIPELINE]
    path = tmp_path_factory.mktemp("rag") / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path) as server:
        yield server


@pytest.fixture(scope="module")
def client(default_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0)


def _other_tenant(server: ServerProcess, tenant: str) -> openai.OpenAI:
    with server.http() as admin:
        response = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": ["infer", "jobs"]})
    assert response.status_code == 201, response.text
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=response.json()["key"], max_retries=0)


def _wait_completed(client: openai.OpenAI, store_id: str, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            return store
        time.sleep(0.2)
    raise AssertionError(f"ingestion did not finish: {store}")


@pytest.fixture(scope="module")
def store(client: openai.OpenAI) -> Iterator[Any]:
    file_ids = {}
    for name, text in DOCS.items():
        file_ids[name] = client.files.create(file=(name, text.encode()), purpose="assistants").id
    created = client.vector_stores.create(name="topics", metadata={"team": "docs"})
    for name, file_id in file_ids.items():
        client.vector_stores.files.create(created.id, file_id=file_id, attributes={"name": name, "rank": len(name)})
    yield _wait_completed(client, created.id), file_ids
    client.vector_stores.delete(created.id)


def test_files_are_listed_per_purpose_and_deleted(client: openai.OpenAI) -> None:
    first = client.files.create(file=("a.txt", b"alpha"), purpose="user_data")
    second = client.files.create(file=("b.txt", b"beta"), purpose="assistants")
    listed = [f.id for f in client.files.list(purpose="user_data")]
    assert first.id in listed
    assert second.id not in listed
    page = client.files.list(limit=1)
    assert len(page.data) == 1
    assert page.has_more
    assert client.files.retrieve(second.id).purpose == "assistants"
    assert client.files.content(first.id).read() == b"alpha"
    deleted = client.files.delete(first.id)
    assert deleted.deleted
    assert deleted.id == first.id
    assert first.id not in [f.id for f in client.files.list()]
    with pytest.raises(openai.NotFoundError):
        client.files.delete(first.id)


def test_every_format_is_ingested_and_searchable(client: openai.OpenAI, store: tuple[Any, dict[str, str]]) -> None:
    vector_store, file_ids = store
    assert vector_store.file_counts.completed == len(DOCS)
    assert vector_store.file_counts.failed == 0
    assert vector_store.status == "completed"
    files = client.vector_stores.files.list(vector_store.id)
    assert {f.id for f in files} == set(file_ids.values())
    assert all(f.status == "completed" and f.last_error is None for f in files)
    expectations = [("how do I bake bread with yeast", "cooking.txt"), ("launch into orbit", "rockets.md"),
                    ("kittens and purring", "cats.jsonl"), ("ocean tides and the moon", "tides.html")]  # fmt: skip
    for query, expected in expectations:
        results = client.vector_stores.search(vector_store.id, query=query, max_num_results=2).data
        assert results[0].filename == expected, (query, [(r.filename, r.score) for r in results])
        assert results[0].file_id == file_ids[expected]
        assert results[0].score > results[-1].score or len(results) == 1
    html = client.vector_stores.search(vector_store.id, query="tides", max_num_results=1).data[0]
    assert "<p>" not in html.content[0].text
    assert "var x" not in html.content[0].text
    assert "twice a day" in html.content[0].text


def test_search_filters_and_limits(client: openai.OpenAI, store: tuple[Any, dict[str, str]]) -> None:
    vector_store, _ = store
    only_cats = client.vector_stores.search(
        vector_store.id, query="bread", filters={"type": "eq", "key": "name", "value": "cats.jsonl"}
    ).data
    assert {r.filename for r in only_cats} == {"cats.jsonl"}
    long_names = client.vector_stores.search(
        vector_store.id, query="anything", max_num_results=50,
        filters={"type": "and", "filters": [{"type": "gte", "key": "rank", "value": 10},
                                            {"type": "ne", "key": "name", "value": "rockets.md"}]},
    ).data  # fmt: skip
    assert {r.filename for r in long_names} == {"cooking.txt", "cats.jsonl", "tides.html"}
    assert len(client.vector_stores.search(vector_store.id, query="rockets", max_num_results=1).data) == 1


def test_chat_retrieval_cites_its_sources(default_server: ServerProcess, store: tuple[Any, dict[str, str]]) -> None:
    vector_store, file_ids = store
    client = openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="strata-chat-tiny", max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "How long should bread dough rise?"}],
        extra_body={"retrieval": {"vector_store_ids": [vector_store.id], "top_k": 2}},
    )  # fmt: skip
    assert float(raw.headers["x-strata-retrieval-ms"]) > 0
    answer = raw.parse()
    citations = [a.model_dump() for a in answer.choices[0].message.annotations or []]
    assert 1 <= len(citations) <= 2
    best = citations[0]["file_citation"]
    assert best["file_id"] == file_ids["cooking.txt"]
    assert best["filename"] == "cooking.txt"
    assert best["score"] > 0.3
    assert best["chunk_index"] == 0
    # The sources reach the prompt: the same question without retrieval reads far fewer tokens.
    plain = client.chat.completions.create(
        model="strata-chat-tiny", max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "How long should bread dough rise?"}],
    )  # fmt: skip
    assert answer.usage is not None
    assert plain.usage is not None
    assert answer.usage.prompt_tokens > plain.usage.prompt_tokens + 20
    # Streamed, the citations come with the first chunk.
    stream = client.chat.completions.create(
        model="strata-chat-tiny", max_tokens=4, temperature=0, stream=True,
        messages=[{"role": "user", "content": "How long should bread dough rise?"}],
        extra_body={"retrieval": {"vector_store_ids": [vector_store.id], "top_k": 1}},
    )  # fmt: skip
    first = next(iter(stream))
    streamed = first.choices[0].delta.model_dump()["annotations"]
    assert [a["file_citation"]["file_id"] for a in streamed] == [file_ids["cooking.txt"]]
    stream.close()


def test_a_pipeline_retrieves_then_generates(default_server: ServerProcess, store: tuple[Any, dict[str, str]]) -> None:
    vector_store, file_ids = store
    body = {"input": {"query": "what makes a rocket reach orbit?", "vector_store_ids": [vector_store.id]}}
    with default_server.http() as http:
        ran = http.post("/v1/pipelines/rag/run", json=body)
        assert ran.status_code == 200, ran.text
        found = ran.json()["output"]
        assert ran.json()["steps"]["answer"]["usage"]["prompt_tokens"] > 20  # the sources reached the prompt
        assert found["results"][0]["file_id"] == file_ids["rockets.md"]
        assert found["context"].startswith("[1] (rockets.md) # Rockets")
        assert len(found["results"]) == 2
        other = _other_tenant(default_server, "pipeline-rival")
        with httpx.Client(base_url=default_server.url, headers={"Authorization": f"Bearer {other.api_key}"}) as them:
            refused = them.post("/v1/pipelines/rag/run", json=body)
    assert refused.status_code >= 400
    assert vector_store.id in refused.text


def test_another_tenant_cannot_see_or_search_a_store(
    default_server: ServerProcess, store: tuple[Any, dict[str, str]]
) -> None:
    vector_store, file_ids = store
    other = _other_tenant(default_server, "rival")
    assert vector_store.id not in [s.id for s in other.vector_stores.list()]
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.retrieve(vector_store.id)
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.search(vector_store.id, query="bread")
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.files.list(vector_store.id)
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.delete(vector_store.id)
    with pytest.raises(openai.NotFoundError) as error:
        other.chat.completions.create(
            model="strata-chat-tiny", max_tokens=4, messages=[{"role": "user", "content": "bread?"}],
            extra_body={"retrieval": {"vector_store_ids": [vector_store.id]}},
        )  # fmt: skip
    assert error.value.body["param"] == "retrieval.vector_store_ids[0]"  # type: ignore[index]
    # Nor attach the owner's files to a store of its own.
    own = other.vector_stores.create(name="mine")
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.files.create(own.id, file_id=file_ids["cooking.txt"])
    assert file_ids["cooking.txt"] not in [f.id for f in other.files.list()]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("search", {"query": "x", "max_num_results": 0}, "max_num_results"),
        ("search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        ("search", {"query": ""}, "query"),
        ("search", {"query": "x", "filters": {"type": "like", "key": "a", "value": "b"}}, "filters.type"),
        ("search", {"query": "x", "filters": {"type": "eq", "key": "a"}}, "filters.value"),
        ("files", {"file_id": "file-nope"}, "file_id"),
        ("files", {"file_id": "f", "chunking_strategy": {"type": "static", "static": {
            "max_chunk_size_tokens": 100, "chunk_overlap_tokens": 80}}},
         "chunking_strategy.static.chunk_overlap_tokens"),
        ("files", {"file_id": "f", "attributes": {"k": ["list"]}}, "attributes.k"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(
    default_server: ServerProcess, store: tuple[Any, dict[str, str]], path: str, body: dict[str, Any], param: str
) -> None:
    vector_store, _ = store
    with default_server.http() as http:
        response = http.post(f"/v1/vector_stores/{vector_store.id}/{path}", json=body)
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["param"] == param, response.text


def test_unsupported_files_and_unknown_stores(default_server: ServerProcess, client: openai.OpenAI) -> None:
    image = client.files.create(file=("photo.png", b"\x89PNG...."), purpose="assistants")
    created = client.vector_stores.create(name="strict")
    with pytest.raises(openai.BadRequestError) as error:
        client.vector_stores.files.create(created.id, file_id=image.id)
    assert error.value.body["param"] == "file_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_missing")
    with default_server.http() as http:
        response = http.get("/v1/files", params={"limit": "0"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "limit"
    client.vector_stores.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(created.id)


def test_detaching_a_file_removes_its_chunks(client: openai.OpenAI) -> None:
    created = client.vector_stores.create(name="detach")
    bread = client.files.create(file=("bread.txt", DOCS["cooking.txt"].encode()), purpose="assistants")
    rocket = client.files.create(file=("rocket.md", DOCS["rockets.md"].encode()), purpose="assistants")
    for file_id in (bread.id, rocket.id):
        client.vector_stores.files.create(created.id, file_id=file_id)
    _wait_completed(client, created.id)
    assert client.vector_stores.files.retrieve(bread.id, vector_store_id=created.id).status == "completed"
    client.vector_stores.files.delete(bread.id, vector_store_id=created.id)
    found = client.vector_stores.search(created.id, query="bake bread", max_num_results=10).data
    assert {r.file_id for r in found} == {rocket.id}
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(bread.id, vector_store_id=created.id)
    client.vector_stores.delete(created.id)
