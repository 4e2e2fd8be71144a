"""Prompt templates against `strata serve` (the default app, on SQLite and on PostgreSQL): versions and
rollback over HTTP, chat through the official openai client with ``prompt``, retrieval placed by a
template, a pipeline step naming a prompt, tenants kept apart, bad variables and sandbox escapes
refused with the field named, and the template's id and version in the audit trail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

from strata.apps import default_app_path
from strata.cli.main import app as cli
from strata.testing import ServerProcess
from strata.testing.databases import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # its own servers: a model load each
runner = CliRunner()

MODEL = "strata-chat-tiny"
PIPELINE = {
    "name": "templated",
    "steps": [{"name": "answer", "kind": "generate", "model": MODEL, "max_tokens": 6, "prompt_id": "support"}],
}
SUPPORT_V1 = {
    "id": "support",
    "description": "first try",
    "messages": [{"role": "system", "content": "You answer questions about {{ product }}."}],
    "variables": {"product": {"type": "string"}},
}
SUPPORT_V2 = {
    "id": "support",
    "messages": [
        {"role": "system", "content": "You answer questions about {{ product }}{% if vip %}, politely{% endif %}."},
        {"role": "user", "content": "My order is {{ order_id }}."},
    ],
    "variables": {
        "product": {"type": "string"},
        "order_id": {"type": "integer", "description": "the order asked about"},
        "vip": {"type": "boolean", "default": False},
    },
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = yaml.safe_load(default_app_path().read_text())
    spec["pipelines"] = [PIPELINE]
    folder = tmp_path_factory.mktemp(f"prompts-{request.param}")
    path = folder / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    with (
        temporary_database(request.param, folder) as database_url,
        ServerProcess(path, env={"STRATA_DATABASE_URL": database_url}) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0)


@pytest.fixture(scope="module")
def support(http: httpx.Client) -> dict[str, Any]:
    """The prompt 'support' at version 2 (version 1 before it)."""
    for body in (SUPPORT_V1, SUPPORT_V2):
        created = http.post("/v1/prompts", json=body)
        assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def _tenant(server: ServerProcess, tenant: str, scopes: list[str]) -> str:
    with server.http() as admin:
        response = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scopes})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _chat(client: openai.OpenAI, messages: list[dict[str, str]], **extra: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL,
        max_tokens=6,
        temperature=0,
        messages=messages,
        extra_body=extra or None,  # type: ignore[arg-type]
    )


def test_versions_are_created_listed_read_and_rolled_back(http: httpx.Client, support: dict[str, Any]) -> None:
    assert support["object"] == "prompt"
    assert (support["current_version"], support["latest_version"]) == (2, 2)
    assert support["template"]["variables"]["order_id"] == {"type": "integer", "description": "the order asked about"}
    versions = http.get("/v1/prompts/support/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    first = http.get("/v1/prompts/support/versions/1").json()
    assert first["messages"] == SUPPORT_V1["messages"]
    assert first["description"] == "first try"
    listed = http.get("/v1/prompts").json()
    assert "support" in [p["id"] for p in listed["data"]]
    back = http.post("/v1/prompts/support/rollback", json={}).json()
    assert (back["current_version"], back["latest_version"], back["template"]["version"]) == (1, 2, 1)
    assert http.get("/v1/prompts/support").json()["current_version"] == 1
    refused = http.post("/v1/prompts/support/rollback", json={})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "no_earlier_version"
    forward = http.post("/v1/prompts/support/rollback", json={"version": 2}).json()
    assert forward["current_version"] == 2
    missing = http.get("/v1/prompts/support/versions/9")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "prompt_not_found"
    bad = http.get("/v1/prompts/support/versions/two")
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "version")


def test_chat_renders_the_template_before_the_requests_messages(
    client: openai.OpenAI, support: dict[str, Any], http: httpx.Client
) -> None:
    question = [{"role": "user", "content": "Where is it?"}]
    variables = {"product": "Strata", "order_id": 42, "vip": True}
    templated = _chat(client, question, prompt={"id": "support", "variables": variables})
    literal = _chat(client, [{"role": "system", "content": "You answer questions about Strata, politely."},
                             {"role": "user", "content": "My order is 42."}, *question])  # fmt: skip
    # The model saw exactly the rendered messages followed by the request's own.
    assert templated.usage.prompt_tokens == literal.usage.prompt_tokens
    assert templated.choices[0].message.content == literal.choices[0].message.content
    # A pinned version renders that version, whatever is current; no messages of its own are needed.
    pinned = _chat(client, [], prompt={"id": "support", "version": 1, "variables": {"product": "Strata"}})
    plain = _chat(client, [{"role": "system", "content": "You answer questions about Strata."}])
    assert pinned.usage.prompt_tokens == plain.usage.prompt_tokens
    # Streamed the same way.
    stream = client.chat.completions.create(
        model=MODEL, max_tokens=6, temperature=0, messages=question, stream=True,  # type: ignore[arg-type]
        extra_body={"prompt": {"id": "support", "variables": variables}},
    )  # fmt: skip
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == templated.choices[0].message.content
    )


def test_the_template_id_and_version_reach_the_audit_trail(
    client: openai.OpenAI, support: dict[str, Any], server: ServerProcess
) -> None:
    key = _tenant(server, "audited", ["infer", "jobs"])
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as them:
        assert them.post("/v1/prompts", json=SUPPORT_V1).status_code == 201
    theirs = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    _chat(theirs, [{"role": "user", "content": "hi"}], prompt={"id": "support", "variables": {"product": "x"}})
    deadline = time.monotonic() + 15
    with server.http() as admin:
        while time.monotonic() < deadline:  # audit rows are written in bulk, every second or so
            rows = admin.get("/v1/admin/audit", params={"tenant": "audited", "limit": 100}).json()["data"]
            inference = [r for r in rows if r["kind"] == "inference"]
            if inference:
                break
            time.sleep(0.3)
    assert [r["detail"].get("template") for r in inference] == ["support@1"]
    created = [r for r in rows if r["action"] == "prompts.create"]
    assert created[0]["detail"] == {"prompt_id": "support", "version": 1}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as them:
        usage = them.get("/v1/usage").json()
    assert [(p["prompt"], p["requests"]) for p in usage["prompts"]] == [("support@1", 1)]
    assert usage["prompts"][0]["input_tokens"] == usage["data"][0]["input_tokens"] > 0


def test_batch_lines_render_their_prompt_templates(client: openai.OpenAI, support: dict[str, Any]) -> None:
    variables = {"product": "Strata", "order_id": 5}
    lines = [
        {"custom_id": "templated", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": MODEL, "max_tokens": 4, "temperature": 0, "messages": [],
                  "prompt": {"id": "support", "version": 2, "variables": variables}}},
        {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": MODEL, "max_tokens": 4, "messages": [],
                  "prompt": {"id": "support", "version": 2, "variables": {"product": "Strata"}}}},
    ]  # fmt: skip
    upload = client.files.create(file=("lines.jsonl", "\n".join(json.dumps(line) for line in lines).encode()),
                                 purpose="batch")  # fmt: skip
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 90
    while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.3)
    assert batch.output_file_id is not None
    assert batch.error_file_id is not None
    answered = json.loads(client.files.content(batch.output_file_id).read())
    literal = _chat(client, [{"role": "system", "content": "You answer questions about Strata."},
                             {"role": "user", "content": "My order is 5."}])  # fmt: skip
    assert answered["response"]["body"]["usage"]["prompt_tokens"] == literal.usage.prompt_tokens
    failed = json.loads(client.files.content(batch.error_file_id).read())
    assert failed["custom_id"] == "bad"
    assert failed["response"]["body"]["error"]["param"] == "prompt.variables.order_id"


def test_tenants_see_only_their_own_prompts(server: ServerProcess, support: dict[str, Any]) -> None:
    key = _tenant(server, "rival", ["infer", "jobs"])
    rival = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        _chat(rival, [{"role": "user", "content": "hi"}], prompt={"id": "support", "variables": {"product": "x"}})
    assert caught.value.body["param"] == "prompt.id"  # type: ignore[index]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as them:
        assert them.get("/v1/prompts/support").status_code == 404
        assert them.get("/v1/prompts/support/versions/1").status_code == 404
        assert them.post("/v1/prompts/support/rollback", json={"version": 1}).status_code == 404
        assert "support" not in [p["id"] for p in them.get("/v1/prompts").json()["data"]]
        # Their own 'support' is theirs alone: version 1, whatever the other tenant has.
        own = them.post("/v1/prompts", json={**SUPPORT_V1, "description": "rival's"}).json()
        assert (own["current_version"], own["template"]["description"]) == (1, "rival's")
    infer_only = _tenant(server, "rival", ["infer"])
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {infer_only}"}) as reader:
        assert reader.get("/v1/prompts/support").status_code == 200  # reading is what chat needs
        assert reader.post("/v1/prompts", json=SUPPORT_V1).status_code == 403  # changing is not


@pytest.mark.parametrize(
    ("variables", "param", "code"),
    [
        ({"order_id": 1}, "prompt.variables.product", "missing_required_parameter"),
        ({"product": "x", "order_id": "1"}, "prompt.variables.order_id", "invalid_value"),
        ({"product": "x", "order_id": True}, "prompt.variables.order_id", "invalid_value"),
        ({"product": "x", "order_id": 1, "colour": "red"}, "prompt.variables.colour", "unknown_parameter"),
    ],
)
def test_bad_variables_are_400s_naming_the_variable(
    client: openai.OpenAI, support: dict[str, Any], variables: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(
            client, [{"role": "user", "content": "hi"}], prompt={"id": "support", "version": 2, "variables": variables}
        )
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert caught.value.body["code"] == code  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"id": "x", "messages": [{"role": "user", "content": "{{ name }}"}]}, "messages[0].content"),
        ({"id": "x", "messages": [{"role": "user", "content": "{% for %}"}]}, "messages[0].content"),
        ({"id": "x", "messages": [{"role": "user", "content": "{% include 'a' %}"}]}, "messages[0].content"),
        ({"id": "x", "messages": [{"role": "user", "content": "a"}], "variables": {"n": {"type": "float"}}},
         "variables.n.type"),
        ({"id": "x", "messages": [{"role": "user", "content": "{{ n }}"}],
          "variables": {"n": {"type": "integer", "default": "1"}}}, "variables.n.default"),
        ({"id": "../x", "messages": [{"role": "user", "content": "a"}]}, "id"),
        ({"id": "x", "messages": []}, "messages"),
    ],
)  # fmt: skip
def test_bad_templates_are_refused_when_created(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    response = http.post("/v1/prompts", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert http.get("/v1/prompts/x").status_code == 404  # nothing was stored


@pytest.mark.parametrize(
    ("content", "variables"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}),
        ("{{ cycler.__init__.__globals__ }}", {}),
        ("{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}", {"n": 100000}),
        ("{{ 'x' * n }}", {"n": 10**9}),
        ("{% for i in range(n) %}{{ 'y' * 1000 }}{% endfor %}", {"n": 100000}),
    ],
)
def test_sandbox_escapes_and_runaway_templates_are_refused(
    http: httpx.Client, client: openai.OpenAI, content: str, variables: dict[str, Any]
) -> None:
    declared = {name: {"type": "integer"} for name in variables}
    created = http.post("/v1/prompts", json={"id": "hostile", "messages": [{"role": "user", "content": content}],
                                             "variables": declared})  # fmt: skip
    assert created.status_code == 201, created.text
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(client, [], prompt={"id": "hostile", "variables": variables})
    assert time.monotonic() - started < 5  # stopped by a bound, not by finishing
    assert caught.value.body["param"] == "prompt"  # type: ignore[index]
    assert caught.value.body["code"] == "prompt_render_failed"  # type: ignore[index]
    assert "<class" not in str(caught.value.body)  # names the refusal, shows no internals
    assert _chat(client, [{"role": "user", "content": "still there?"}]).choices  # the server serves on


def test_chat_without_messages_or_prompt_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(client, [])
    assert caught.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        _chat(client, [], prompt={"id": "no-such-prompt"})
    assert missing.value.body["param"] == "prompt.id"  # type: ignore[index]


def test_a_template_places_the_retrieved_sources(client: openai.OpenAI, http: httpx.Client) -> None:
    text = "To bake bread, mix flour, water, salt and yeast, then let the dough rise for two hours."
    file_id = client.files.create(file=("bread.txt", text.encode()), purpose="assistants").id
    store = client.vector_stores.create(name="bread", file_ids=[file_id])
    deadline = time.monotonic() + 90
    while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.2)
    created = http.post("/v1/prompts", json={"id": "grounded", "messages": [
        {"role": "system", "content": "Sources:{% for c in chunks %} <{{ c.number }}|{{ c.filename }}> {{ c.text }}"
                                      "{% endfor %}"},
        {"role": "user", "content": "{{ question }}"}], "variables": {"question": {"type": "string"}}})  # fmt: skip
    assert created.status_code == 201, created.text
    question = "How long should bread dough rise?"
    answer = _chat(client, [], prompt={"id": "grounded", "variables": {"question": question}},
                   retrieval={"vector_store_ids": [store.id], "top_k": 1})  # fmt: skip
    cited = [a.model_dump()["file_citation"]["file_id"] for a in answer.choices[0].message.annotations or []]
    assert cited == [file_id]
    literal = _chat(client, [{"role": "system", "content": f"Sources: <1|bread.txt> {text}"},
                             {"role": "user", "content": question}])  # fmt: skip
    assert answer.usage.prompt_tokens == literal.usage.prompt_tokens  # placed by the template, not added again
    assert answer.choices[0].message.content == literal.choices[0].message.content


def test_a_pipeline_step_renders_a_stored_prompt(http: httpx.Client, client: openai.OpenAI, support: Any) -> None:
    assert http.post("/v1/prompts/support/rollback", json={"version": 2}).status_code == 200
    ran = http.post("/v1/pipelines/templated/run", json={"input": {"product": "Strata", "order_id": 7}})
    assert ran.status_code == 200, ran.text
    step = ran.json()["output"]
    literal = _chat(client, [{"role": "system", "content": "You answer questions about Strata."},
                             {"role": "user", "content": "My order is 7."}])  # fmt: skip
    assert step["usage"]["prompt_tokens"] == literal.usage.prompt_tokens
    assert step["text"] == literal.choices[0].message.content
    bad = http.post("/v1/pipelines/templated/run", json={"input": {"product": "Strata", "order_id": "seven"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "prompt.variables.order_id"


def test_the_cli_creates_lists_shows_and_rolls_back(server: ServerProcess, tmp_path: Any) -> None:
    key = _tenant(server, "cli-tenant", ["infer", "jobs"])
    common = ["--url", server.url, "--api-key", key]
    template = tmp_path / "greet.yaml"
    for text in ("Hello {{ name }}.", "Hi {{ name }}!"):
        template.write_text(yaml.safe_dump({"description": "greets", "variables": {"name": {"type": "string"}},
                                            "messages": [{"role": "system", "content": text}]}))  # fmt: skip
        created = runner.invoke(cli, ["prompts", "create", "greet", "--file", str(template), *common])
        assert created.exit_code == 0, created.output
    assert "version 2 current (latest 2)" in created.output
    listed = runner.invoke(cli, ["prompts", "list", *common])
    assert "greet" in listed.output
    assert "greets" in listed.output
    shown = runner.invoke(cli, ["prompts", "show", "greet", "--version", "1", *common])
    assert "versions: 2, 1" in shown.output
    assert "Hello {{ name }}." in shown.output
    back = runner.invoke(cli, ["prompts", "rollback", "greet", *common])
    assert "version 1 current (latest 2)" in back.output
    refused = runner.invoke(cli, ["prompts", "rollback", "greet", *common])
    assert refused.exit_code == 1
    assert "at version 1" in refused.output
    template.write_text(yaml.safe_dump({"messages": [{"role": "user", "content": "{{ undeclared }}"}]}))
    bad = runner.invoke(cli, ["prompts", "create", "greet", "--file", str(template), *common])
    assert bad.exit_code == 1
    assert "messages[0].content" in bad.output
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as admin:
        assert admin.get("/v1/prompts/greet").status_code == 404  # the CLI acted as its key's tenant
