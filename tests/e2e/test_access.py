"""Access control over real HTTP: keys, scopes, allow-lists, tenants, budgets, audit, bootstrap."""

import json
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e
APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, signing_key: rsa.RSAPrivateKey) -> Iterator[ServerProcess]:
    # The access app, plus JWT bearer tokens checked against a JWKS file made for this run.
    folder = tmp_path_factory.mktemp("access")
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    (folder / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "test-key"}]}))
    spec = yaml.safe_load((APPS / "access.yaml").read_text())
    spec["access"]["jwt"] = {
        "jwks_file": str(folder / "jwks.json"),
        "issuer": "https://issuer.test",
        "audience": "strata",
    }
    (folder / "app.yaml").write_text(yaml.safe_dump(spec))
    with ServerProcess(folder / "app.yaml") as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


def _key(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = admin.post("/v1/admin/keys", json={"scopes": ["infer"], **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _as(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    return error


def test_nothing_but_health_is_open(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        for method, path in [
            ("GET", "/v1/models"),
            ("POST", "/v1/models/echo/predict"),
            ("GET", "/metrics"),
            ("GET", "/v1/admin/keys"),
            ("GET", "/v1/usage"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
        ]:
            response = anonymous.request(method, path, json={"inputs": [1]})
            _error(response, 401, "missing_api_key")
            assert response.headers["www-authenticate"] == "Bearer"
        bad = anonymous.get("/v1/models", headers={"Authorization": "Bearer sk-strata-000000000000.nope"})
        _error(bad, 401, "invalid_api_key")


def test_scopes_gate_every_route(server: ServerProcess, admin: httpx.Client) -> None:
    infer = _key(admin, tenant="acme")
    jobs = _key(admin, tenant="acme", scopes=["jobs"])
    with _as(server, infer["key"]) as client:
        assert client.post("/v1/models/echo/predict", json={"inputs": ["hi"]}).json()["outputs"] == ["hi"]
        _error(client.get("/v1/admin/keys"), 403, "insufficient_permissions")
        _error(
            client.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["admin"]}), 403, "insufficient_permissions"
        )
        _error(client.get("/metrics"), 403, "insufficient_permissions")
    with _as(server, jobs["key"]) as client:
        _error(client.post("/v1/models/echo/predict", json={"inputs": ["hi"]}), 403, "insufficient_permissions")
        assert client.get("/v1/usage").status_code == 200  # any valid key reads its own usage


def test_model_allow_list_hides_other_models(server: ServerProcess, admin: httpx.Client) -> None:
    key = _key(admin, tenant="acme", models=["echo"])
    with _as(server, key["key"]) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["echo"]
        assert client.post("/v1/models/echo/predict", json={"inputs": [1]}).status_code == 200
        # Refused exactly like a model that does not exist: the key learns nothing about it.
        denied = _error(client.post("/v1/models/secret-echo/predict", json={"inputs": [1]}), 404, "model_not_found")
        missing = _error(client.post("/v1/models/no-such/predict", json={"inputs": [1]}), 404, "model_not_found")
        assert denied["message"].replace("secret-echo", "X") == missing["message"].replace("no-such", "X")
        _error(client.get("/v1/models/secret-echo"), 404, "model_not_found")


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "svc",
        "tenant": "jwt-tenant",
        "scope": "infer",
        "iss": "https://issuer.test",
        "aud": "strata",
        "exp": now + 300,
    }
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "test-key"})


def test_jwt_bearer_tokens_map_to_tenants_and_scopes(server: ServerProcess, signing_key: rsa.RSAPrivateKey) -> None:
    with _as(server, _token(signing_key, models=["echo"])) as client:
        assert client.post("/v1/models/echo/predict", json={"inputs": [1]}).status_code == 200
        _error(client.post("/v1/models/secret-echo/predict", json={"inputs": [1]}), 404, "model_not_found")
        assert {row["tenant"] for row in client.get("/v1/usage").json()["data"]} == {"jwt-tenant"}
    with _as(server, _token(signing_key, scope="jobs")) as client:
        _error(client.post("/v1/models/echo/predict", json={"inputs": [1]}), 403, "insufficient_permissions")
    with _as(server, _token(signing_key, aud="elsewhere")) as client:
        _error(client.get("/v1/models"), 401, "invalid_token")
    unsigned = jwt.encode({"tenant": "x", "scope": "admin", "exp": int(time.time()) + 60}, None, algorithm="none")
    with _as(server, unsigned) as client:
        _error(client.get("/v1/admin/keys"), 401, "invalid_token")


def test_bad_admin_input_names_the_field(admin: httpx.Client) -> None:
    for body, param in [
        ({"scopes": ["infer"]}, "tenant"),
        ({"tenant": "a", "scopes": ["root"]}, "scopes[0]"),  # the element: scopes are typed in the document
        ({"tenant": "a", "scopes": ["infer"], "expires_in_s": -1}, "expires_in_s"),
        ({"tenant": "a", "scopes": ["infer"], "colour": 1}, "colour"),
    ]:
        response = admin.post("/v1/admin/keys", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    _error(admin.get("/v1/admin/keys/nope"), 404, "key_not_found")
    _error(admin.delete("/v1/admin/keys/nope"), 404, "key_not_found")


def test_revoked_and_expired_keys_are_refused_on_the_next_request(server: ServerProcess, admin: httpx.Client) -> None:
    revoked = _key(admin, tenant="acme")
    expiring = _key(admin, tenant="acme", expires_in_s=1)
    with _as(server, revoked["key"]) as client:
        assert client.get("/v1/models").status_code == 200
        assert admin.delete(f"/v1/admin/keys/{revoked['id']}").json()["revoked_at"] is not None
        _error(client.get("/v1/models"), 401, "invalid_api_key")
    with _as(server, expiring["key"]) as client:
        assert client.get("/v1/models").status_code == 200
        time.sleep(1.2)
        _error(client.get("/v1/models"), 401, "invalid_api_key")
    listed = {k["id"]: k for k in admin.get("/v1/admin/keys", params={"tenant": "acme"}).json()["data"]}
    assert listed[revoked["id"]]["revoked_at"] is not None
    assert all("key" not in k for k in listed.values())


def test_tenants_see_only_their_own_usage(server: ServerProcess, admin: httpx.Client) -> None:
    alpha, beta = _key(admin, tenant="alpha"), _key(admin, tenant="beta")
    with _as(server, alpha["key"]) as client:
        for _ in range(3):
            assert client.post("/v1/models/echo/predict", json={"inputs": ["a"]}).status_code == 200
        mine = client.get("/v1/usage", params={"tenant": "beta"}).json()["data"]  # the parameter is ignored
    assert {row["tenant"] for row in mine} == {"alpha"}
    assert mine[0]["requests"] == 3
    with _as(server, beta["key"]) as client:
        assert client.get("/v1/usage").json()["data"] == []
        _error(client.get("/v1/admin/usage"), 403, "insufficient_permissions")
    everyone = admin.get("/v1/admin/usage").json()["data"]
    assert {"alpha"} <= {row["tenant"] for row in everyone}


def test_a_spent_budget_stops_the_tenant(server: ServerProcess, admin: httpx.Client) -> None:
    capped, other = _key(admin, tenant="capped"), _key(admin, tenant="uncapped")
    with _as(server, capped["key"]) as client:
        assert client.post("/v1/models/pricey-echo/predict", json={"inputs": [1]}).status_code == 200
        error = _error(client.post("/v1/models/echo/predict", json={"inputs": [1]}), 429, "insufficient_quota")
        assert error["type"] == "insufficient_quota"
        assert client.get("/v1/usage").json()["data"][0]["cost"] > 1.0
    with _as(server, other["key"]) as client:  # the others are untouched
        assert client.post("/v1/models/pricey-echo/predict", json={"inputs": [1]}).status_code == 200


def test_audit_records_requests_without_secrets(server: ServerProcess, admin: httpx.Client) -> None:
    plain, open_book = _key(admin, tenant="quiet"), _key(admin, tenant="open-book")
    for key in (plain, open_book):
        with _as(server, key["key"]) as client:
            assert client.post("/v1/models/echo/predict", json={"inputs": ["the secret plan"]}).status_code == 200
    with httpx.Client(base_url=server.url) as anonymous:
        anonymous.get("/v1/models", headers={"Authorization": "Bearer sk-strata-000000000000.guess"})
    rows = admin.get("/v1/admin/audit", params={"limit": 1000}).json()["data"]
    quiet = next(r for r in rows if r["tenant"] == "quiet" and r["kind"] == "inference")
    assert quiet["detail"]["model"] == "echo@echo"
    assert quiet["detail"]["request_bytes"] > 0
    assert len(quiet["detail"]["request_sha256"]) == 64
    assert quiet["detail"]["response_sha256"]
    assert quiet["detail"]["latency_ms"] >= 0
    assert "prompt" not in quiet["detail"]
    assert "secret plan" not in str(quiet)
    kept = next(r for r in rows if r["tenant"] == "open-book" and r["kind"] == "inference")
    assert "the secret plan" in kept["detail"]["prompt"]
    assert any(r["kind"] == "denial" and r["status"] == 401 for r in rows)
    assert any(r["kind"] == "admin" and r["action"] == "keys.create" for r in rows)
    text = str(rows) + server.logs()
    for secret in (plain["key"], open_book["key"], server.api_key, "000000000000.guess"):
        assert secret not in text
    assert admin.get("/v1/admin/audit/verify").json()["ok"] is True


def test_openai_client_with_a_tenant_key(default_server: ServerProcess) -> None:
    with default_server.http() as admin:
        key = _key(admin, tenant="oai", models=["strata-chat-tiny"])
        client = openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=key["key"], max_retries=0)
        reply = client.chat.completions.create(
            model="strata-chat-tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens > 0
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="all-MiniLM-L6-v2", input=["x"])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{default_server.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
        usage = admin.get("/v1/admin/usage", params={"tenant": "oai"}).json()["data"]
    assert usage[0]["input_tokens"] > 0
    assert usage[0]["output_tokens"] > 0


@pytest.mark.slow
def test_first_start_writes_an_admin_key_to_a_private_file_and_audit_verify_catches_edits(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'strata.db'}"
    key_file = tmp_path / "admin-key"
    env = {"STRATA_ADMIN_KEY": "", "STRATA_DATABASE_URL": database, "STRATA_ADMIN_KEY_FILE": str(key_file)}
    with ServerProcess(APPS / "access.yaml", env=env) as first:
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key not in first.logs()  # stdout and stderr: what a pod's log keeps
        with _as(first, key) as client:
            assert client.get("/v1/admin/keys").status_code == 200
            assert client.post("/v1/models/echo/predict", json={"inputs": [1]}).status_code == 200
    key_file.unlink()
    with ServerProcess(APPS / "access.yaml", env=env) as second:
        assert not key_file.exists()  # an admin key exists: none is generated
        with second.http() as client:
            assert client.get("/healthz").status_code == 200
    strata = [sys.executable, "-m", "strata", "audit", "verify", "--database-url", database]
    intact = subprocess.run(strata, capture_output=True, text=True, check=False)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    with sqlite3.connect(tmp_path / "strata.db") as connection:
        connection.execute("UPDATE access_audit SET status = status + 1 WHERE seq = 2")
    tampered = subprocess.run(strata, capture_output=True, text=True, check=False)
    assert tampered.returncode == 1
    assert "row 2" in tampered.stdout
