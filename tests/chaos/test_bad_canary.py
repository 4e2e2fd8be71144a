"""A bad canary - raising, or 10x slow - is rolled back automatically inside its analysis window,
and at most the canary's share of requests is affected."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from chaos_helpers import ChaosServer, Reply, predict, report

from strata.testing.chaos import Fault

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(60)]

CANARY_SHARE = 10.0  # percent
WINDOW_S = 10.0


async def _load_until_settled(
    chaos: ChaosServer, client: httpx.AsyncClient, route: str
) -> tuple[list[Reply], dict[str, object]]:
    replies: list[Reply] = []
    stop = asyncio.Event()

    async def client_loop() -> None:
        while not stop.is_set():
            replies.append(await predict(client, route))

    async def watch() -> dict[str, object]:
        deadline = time.perf_counter() + WINDOW_S + 5
        while time.perf_counter() < deadline:
            status = (await client.get(f"/v1/admin/routes/{route}/rollout")).json()["rollout"]
            if status["phase"] != "running":
                return status  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)
        raise AssertionError("the rollout neither rolled back nor finished")

    loops = [asyncio.create_task(client_loop()) for _ in range(4)]
    try:
        status = await watch()
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return replies, status


@pytest.mark.parametrize(
    ("route", "canary", "fault"),
    [("release", "canary", Fault("raise")), ("release-slow", "slow", Fault("slow", factor=10))],
    ids=["errors", "slow"],
)
async def test_bad_canary_is_rolled_back_inside_the_window(
    chaos: ChaosServer, capsys: pytest.CaptureFixture[str], route: str, canary: str, fault: Fault
) -> None:
    chaos.control(canary).set(fault)
    async with chaos.server.async_http(timeout=30) as client:
        # Open the clients' connections first: their set-up time must not count against either version.
        await asyncio.gather(*(predict(client, route) for _ in range(8)))
        start = {"canary": "v2", "steps": [CANARY_SHARE, 50, 100], "window_s": WINDOW_S, "min_requests": 5}
        started = await client.post(f"/v1/admin/routes/{route}/rollout", json=start)
        assert started.status_code == 201, started.text
        replies, status = await _load_until_settled(chaos, client, route)
        after = [await predict(client, route) for _ in range(20)]
    chaos.control(canary).clear()
    on_canary = [r for r in replies if r.headers.get("x-strata-version") == "v2"]
    affected = [r for r in replies if r.status != 200 or r.headers.get("x-strata-version") == "v2"]
    report(
        capsys,
        f"bad canary ({fault.kind}): {status['phase']} after {status['elapsed_s']} s (window {WINDOW_S:g} s): "
        f"{status['reason']}; {len(affected)}/{len(replies)} requests affected "
        f"({len(affected) / len(replies):.1%}, canary share {CANARY_SHARE:g}%)",
    )
    assert status["phase"] == "rolled_back"
    assert float(status["elapsed_s"]) <= WINDOW_S  # type: ignore[arg-type]
    assert len(on_canary) <= len(replies) * CANARY_SHARE / 100 + 1
    assert len(affected) <= len(replies) * CANARY_SHARE / 100 + 1
    assert all(r.status == 200 and r.headers["x-strata-version"] == "v1" for r in after)


async def test_healthy_canary_is_promoted_step_by_step(chaos: ChaosServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with chaos.server.async_http(timeout=30) as client:
        # Generous latency margins: the max of a few dozen samples on a shared machine is noisy.
        start = {"canary": "v2", "steps": [20, 50, 100], "window_s": 1, "min_requests": 5, "p99_slack_ms": 200}
        started = await client.post("/v1/admin/routes/promote/rollout", json=start)
        assert started.status_code == 201, started.text
        replies, status = await _load_until_settled(chaos, client, "promote")
        after = [await predict(client, "promote") for _ in range(10)]
    steps = [event["what"] for event in status["events"]]  # type: ignore[union-attr]
    report(capsys, f"healthy canary: {status['phase']} after {status['elapsed_s']} s; {steps}")
    assert status["phase"] == "promoted"
    assert [step.split(" (")[0] for step in steps] == [
        "started: canary 'v2' at 20%",
        "advanced to 50%",
        "promoted: canary 'v2' at 100%",
    ]
    assert all(r.status == 200 for r in replies)
    assert all(r.headers["x-strata-version"] == "v2" for r in after)
