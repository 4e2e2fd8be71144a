"""Admission by latency target and fair share between tenants, over real HTTP.

The `paced` deployment serves about 10 requests/s (one replica, one request at a time, 100 ms each) and
declares a 1 s p99 target, and nothing else: no concurrency limit, no queue sized for the test.
Requests arrive open-loop (an overload does not slow its own arrivals) at ten times that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(90)]

CAPACITY_RPS = 10.0
TARGET_S = 1.0
SHED_FAST_S = 0.05  # a shed request is answered at once (median; its tail is the loaded machine's, not a queue's)

SPEC = f"""
name: admission
models:
  - {{name: paced, kind: python, entrypoint: "strata.models.python_model:EchoModel", options: {{sleep_ms: 100}}}}
deployments:
  - name: paced
    model: paced
    batching: {{max_batch_size: 1, max_wait_ms: 0}}
    targets: {{latency_p99_ms: {TARGET_S * 1000:g}}}
routes:
  - {{name: paced, deployment: paced}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path: Path = tmp_path_factory.mktemp("admission") / "app.yaml"
    path.write_text(SPEC)
    with ServerProcess(path) as running:
        yield running


def _key(server: ServerProcess, tenant: str) -> str:
    with server.http() as admin:
        reply = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": ["infer"]})
    reply.raise_for_status()
    return str(reply.json()["key"])


async def _open_loop(server: ServerProcess, key: str, rate_rps: float, duration_s: float) -> list[httpx.Response]:
    """Send at a fixed rate whatever the answers; each response gets its latency in ``extensions``."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30, limits=limits) as client:

        async def one() -> httpx.Response:
            started = time.perf_counter()
            response = await client.post("/v1/models/paced/predict", json={"inputs": [1]})
            response.extensions["latency_s"] = time.perf_counter() - started
            return response

        tasks = []
        started = time.perf_counter()
        for index in range(int(rate_rps * duration_s)):
            delay = started + index / rate_rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        return list(await asyncio.gather(*tasks))


def _percentile(responses: list[httpx.Response], q: float) -> float:
    latencies = sorted(r.extensions["latency_s"] for r in responses)
    return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else 0.0


def _p99(responses: list[httpx.Response]) -> float:
    return _percentile(responses, 99)


def _admission(server: ServerProcess) -> dict[str, object]:
    with server.http() as admin:
        return admin.get("/v1/admin/deployments").json()["deployments"]["paced"]["admission"]  # type: ignore[no-any-return]


async def test_overload_is_shed_at_once_while_admitted_requests_meet_the_target(server: ServerProcess) -> None:
    key = _key(server, "solo")
    await _open_loop(server, key, CAPACITY_RPS / 2, 1.0)  # the prediction learns from a few requests first
    replies = await _open_loop(server, key, CAPACITY_RPS * 10, 3.0)
    admitted = [r for r in replies if r.status_code == 200]
    shed = [r for r in replies if r.status_code == 503]
    assert len(admitted) + len(shed) == len(replies), sorted({r.status_code for r in replies})
    assert len(admitted) >= CAPACITY_RPS * 3.0 * 0.6, "the deployment keeps serving near its capacity"
    assert len(shed) >= len(replies) * 0.5
    # The bound for p99 (1.5x the target: the machine running this is shared, and p99 of ~20 requests
    # is their slowest one); without admission by target they queue for seconds.
    assert _percentile(admitted, 50) <= TARGET_S, f"admitted p50 {_percentile(admitted, 50):.3f} s"
    assert _p99(admitted) <= TARGET_S * 1.5, f"admitted p99 {_p99(admitted):.3f} s"
    assert _percentile(shed, 50) <= SHED_FAST_S, f"shed p50 {_percentile(shed, 50):.3f} s"
    assert _percentile(shed, 99) <= TARGET_S, f"shed p99 {_percentile(shed, 99):.3f} s"
    assert all(r.headers.get("retry-after", "").isdigit() for r in shed)
    assert all(r.json()["error"]["code"] == "overloaded" for r in shed)
    admission = _admission(server)
    assert admission["slo_target_ms"] == TARGET_S * 1000
    assert admission["limit"] == 2  # automatic: two batches of 1 on its one replica
    assert admission["shed"]["slo"] > 0  # type: ignore[index]


async def test_a_flooding_tenant_does_not_take_a_quiet_tenants_share(server: ServerProcess) -> None:
    flood_key, quiet_key = _key(server, "flood"), _key(server, "quiet")
    await _open_loop(server, quiet_key, CAPACITY_RPS / 2, 0.5)
    flood, quiet = await asyncio.gather(
        _open_loop(server, flood_key, CAPACITY_RPS * 10, 5.0),
        _open_loop(server, quiet_key, CAPACITY_RPS / 5, 5.0),  # its usual rate: a fifth of capacity
    )
    assert sum(r.status_code == 503 for r in flood) >= len(flood) * 0.5  # the flood was shed
    served = [r for r in quiet if r.status_code == 200]
    assert len(served) == len(quiet), sorted(r.status_code for r in quiet)  # >= 99% of 10: every one
    assert _p99(served) <= TARGET_S, f"quiet tenant p99 {_p99(served):.3f} s"
