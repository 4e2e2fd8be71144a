"""Two gateway processes sharing PostgreSQL and Redis: one rate limit, one revocation list."""

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from strata.testing import ServerProcess, predict_round_robin
from strata.testing.databases import temporary_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REQUESTS_PER_MINUTE = 30


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    spec = {
        "name": "shared",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo"}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "access": {
            "per_key": {"requests_per_minute": REQUESTS_PER_MINUTE},
            "rate_limit_namespace": f"test-{secrets.token_hex(6)}",  # parallel runs never share counters
        },
    }
    path = tmp_path_factory.mktemp("shared") / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    with temporary_postgres_database() as database:
        env = {"STRATA_DATABASE_URL": database, "STRATA_REDIS_URL": "redis://127.0.0.1:6379/0"}
        admin_key = f"sk-strata-test-{secrets.token_hex(16)}"
        with ServerProcess(path, env=env, api_key=admin_key) as a, ServerProcess(path, env=env, api_key=admin_key) as b:
            yield a, b


def _new_key(gateway: ServerProcess) -> dict[str, str]:
    with gateway.http() as admin:
        response = admin.post("/v1/admin/keys", json={"tenant": "shared", "scopes": ["infer"]})
        assert response.status_code == 201, response.text
        created: dict[str, str] = response.json()
        return created


async def test_a_rate_limit_holds_across_two_gateways(gateways: tuple[ServerProcess, ServerProcess]) -> None:
    responses = await predict_round_robin(gateways, _new_key(gateways[0])["key"], "echo", 80)
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) == REQUESTS_PER_MINUTE  # a moving window in Redis: exact, no tolerance needed
    assert len(refused) == 80 - REQUESTS_PER_MINUTE
    # Each gateway got 40 requests: with counters of their own they would have admitted 60 between them.
    sample = refused[0]
    assert sample.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(sample.headers["retry-after"]) >= 1
    assert sample.headers["x-ratelimit-limit-requests"] == str(REQUESTS_PER_MINUTE)
    assert sample.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_key_revoked_on_one_gateway_is_refused_by_the_other(gateways: tuple[ServerProcess, ServerProcess]) -> None:
    first, second = gateways
    key = _new_key(first)
    with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {key['key']}"}) as client:
        assert client.get("/v1/models").status_code == 200  # cached by the second gateway now
        with first.http() as admin:
            assert admin.delete(f"/v1/admin/keys/{key['id']}").status_code == 200
        statuses = []
        for _ in range(50):  # the guarantee is one poll interval (100 ms); wait up to 5 s, never assert time
            statuses.append(client.get("/v1/models").status_code)
            if statuses[-1] == 401:
                break
            time.sleep(0.1)
    assert statuses[-1] == 401, statuses
