"""Redis stopped under load, served: a gateway whose rate limits live in a private redis-server.

While Redis is down, every request that must be counted against a limit answers 503
`dependency_unavailable` + Retry-After within 5 s, never a 500; routes that count nothing (health,
the admin API) keep answering. When Redis returns on the same port, inference works again by itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from strata.testing import ServerProcess
from strata.testing.private_redis import PrivateRedis, available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="needs redis-server (apt: redis-server)"),
]

SPEC = {
    "name": "redis-outage",
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
    "access": {
        "per_key": {"requests_per_minute": 1_000_000},
        "rate_limit_namespace": f"test-{secrets.token_hex(6)}",
    },
}
ANSWER_WITHIN_S = 5.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, PrivateRedis]]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    try:
        with ServerProcess(path, env={"STRATA_REDIS_URL": redis.url}) as server:
            yield server, redis
    finally:
        redis.stop()


async def _predict(client: httpx.AsyncClient, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = await client.post("/v1/models/echo/predict", json={"inputs": ["ping"]},
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    return reply, time.monotonic() - started


async def test_a_stopped_redis_answers_503_for_counted_requests_and_recovers(
    served: tuple[ServerProcess, PrivateRedis],
) -> None:
    server, redis = served
    async with server.async_http(timeout=30) as admin:
        created = await admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["infer"]})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for _ in range(20):  # under load before the outage
                reply, _ = await _predict(client, key)
                assert reply.status_code == 200, reply.text
            redis.stop()
            outcomes = await asyncio.gather(*(_predict(client, key) for _ in range(16)))
            for reply, took_s in outcomes:
                assert reply.status_code == 503, f"{reply.status_code} {reply.text}"
                assert reply.json()["error"]["code"] == "dependency_unavailable"
                assert int(reply.headers["retry-after"]) >= 1
                assert took_s < ANSWER_WITHIN_S, f"a refusal took {took_s:.1f} s"
            assert (await client.get("/healthz")).status_code == 200  # nothing else stopped
            assert (await admin.get("/v1/admin/keys")).status_code == 200  # counts nothing: served
            redis.start()  # the same port: the gateway's pool reconnects by itself
            deadline = time.monotonic() + 15
            while (reply := (await _predict(client, key))[0]).status_code != 200:
                assert reply.status_code == 503, f"{reply.status_code} {reply.text}"
                assert time.monotonic() < deadline, "inference still refused 15 s after Redis returned"
                await asyncio.sleep(0.2)
