"""Protected data over real HTTP: what each tenant's policy keeps, sealed at rest, read back (audited),
re-sealed under a new key while the gateway serves, and a bad key configuration refused at start."""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from strata.testing import ServerProcess
from strata.testing.server import free_port

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "apps" / "protected.yaml"
SECRET = "the vault combination is 31-41-59"
K1 = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
K2 = f"k2:{base64.b64encode(os.urandom(32)).decode()}"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # The gateway already knows k2 (second: it only decrypts): rotation's first step, done before the rekey.
    with ServerProcess(APP, env={"STRATA_DATA_KEYS": f"{K1},{K2}"}) as process:
        yield process


def _client(server: ServerProcess, admin: httpx.Client, tenant: str) -> openai.OpenAI:
    created = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": ["infer"]})
    assert created.status_code == 201, created.text
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=created.json()["key"], max_retries=0)


def _exchanges(admin: httpx.Client, tenant: str) -> list[dict[str, Any]]:
    listed = admin.get("/v1/admin/exchanges", params={"tenant": tenant})
    assert listed.status_code == 200, listed.text
    rows: list[dict[str, Any]] = listed.json()["data"]
    return rows


def test_each_policy_keeps_what_it_says_sealed_at_rest(server: ServerProcess) -> None:
    with server.http() as admin:
        for tenant in ("vault", "ledger", "nobody"):
            with _client(server, admin, tenant) as client:
                reply = client.embeddings.create(model="all-MiniLM-L6-v2", input=[f"{SECRET} ({tenant})"])
            assert len(reply.data[0].embedding) == 384
        vault, ledger, nobody = (_exchanges(admin, t) for t in ("vault", "ledger", "nobody"))
        assert nobody == []
        expected = [(False, None, "all-MiniLM-L6-v2@embeddings")]  # metadata: no content, no key
        assert [(r["has_content"], r["key_id"], r["model"]) for r in ledger] == expected
        assert [(r["has_content"], r["key_id"]) for r in vault] == [(True, "k1")]
        assert SECRET not in str(vault) + str(ledger)  # listings show metadata only
        opened = admin.get(f"/v1/admin/exchanges/{vault[0]['id']}").json()
        assert f"{SECRET} (vault)" in opened["prompt"]
        assert opened["output"].startswith("{")
        assert '"embedding"' in opened["output"]
        assert admin.get(f"/v1/admin/exchanges/{ledger[0]['id']}").json()["prompt"] is None
        for missing in ("999999", "abc"):
            error = admin.get(f"/v1/admin/exchanges/{missing}")
            assert error.status_code == 404
            assert error.json()["error"]["param"] == "exchange_id"
        trail = admin.get("/v1/admin/audit", params={"limit": 1000}).json()["data"]
        reads = [r for r in trail if r["action"] == "exchanges.read"]
        assert {r["detail"]["for_tenant"] for r in reads} == {"vault", "ledger"}
        assert SECRET not in str(trail)  # the audit trail keeps hashes, never the sealed content
        assert admin.get("/v1/admin/audit/verify").json()["ok"] is True
    # At rest: the database files (WAL included) never hold the plaintext.
    stored = b"".join(p.read_bytes() for p in server.state_dir.glob("strata.db*"))
    assert b"vault combination" not in stored


def test_rekey_while_serving_and_old_rows_still_read(server: ServerProcess) -> None:
    with server.http() as admin:
        with _client(server, admin, "vault") as client:
            client.embeddings.create(model="all-MiniLM-L6-v2", input=["before the rekey"])
        before = _exchanges(admin, "vault")
        assert before
        assert {r["key_id"] for r in before} == {"k1"}
        environment = {**server.env, "STRATA_DATA_KEYS": f"{K2},{K1}"}  # k2 first: the rekey's target
        done = subprocess.run(
            [sys.executable, "-m", "strata", "data", "rekey", str(APP)], env=environment, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"{len(before)} stored exchange(s) now sealed with key 'k2'" in done.stdout
        after = _exchanges(admin, "vault")
        assert {r["key_id"] for r in after} == {"k2"}
        for row in after:  # the running gateway (k1 active, k2 known) opens the re-sealed rows
            assert admin.get(f"/v1/admin/exchanges/{row['id']}").json()["prompt"]
        assert any(r["action"] == "data.rekey" for r in admin.get("/v1/admin/audit").json()["data"])


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"STRATA_DATA_KEYS": "k1:not-a-key"}, "STRATA_DATA_KEYS: key 'k1' is not valid base64"),
        ({"STRATA_DATA_KEYS": ""}, "STRATA_DATA_KEYS (or STRATA_DATA_KEYS_FILE) is not set"),
        ({"STRATA_DATA_KEYS_FILE": "/nonexistent/keys"}, "STRATA_DATA_KEYS_FILE: cannot read"),
    ],
)
def test_bad_key_configuration_stops_the_server_naming_the_variable(environment: dict[str, str], named: str,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_DATA_KEYS")}
    env |= {"STRATA_DATABASE_URL": f"sqlite:///{tmp_path}/strata.db", **environment}
    done = subprocess.run(
        [sys.executable, "-m", "strata", "serve", str(APP), "--port", str(free_port())], env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in " ".join(done.stderr.split())  # rich wraps long lines
