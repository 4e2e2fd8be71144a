"""Shared by the chaos tests: the handle on the chaos server and a small load generator."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from strata.testing import ServerProcess
from strata.testing.chaos import ChaosControl


@dataclass
class ChaosServer:
    server: ServerProcess
    folder: Path
    controls: dict[str, ChaosControl] = field(default_factory=dict)

    def control(self, name: str) -> ChaosControl:
        if name not in self.controls:
            self.controls[name] = ChaosControl(self.folder / f"{name}.json")
        return self.controls[name]

    def admin(self, path: str) -> dict[str, object]:
        reply = httpx.get(f"{self.server.url}/v1/admin{path}", headers=self.server.headers, timeout=10)
        reply.raise_for_status()
        return reply.json()  # type: ignore[no-any-return]

    def deployment(self, name: str) -> dict[str, object]:
        return self.admin("/deployments")["deployments"][name]  # type: ignore[index,no-any-return]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    latency_s: float
    headers: httpx.Headers
    sent_at: float


async def predict(client: httpx.AsyncClient, route: str, value: object = 1, **headers: str) -> Reply:
    started = time.perf_counter()
    response = await client.post(f"/v1/models/{route}/predict", json={"inputs": [value]}, headers=headers)
    return Reply(response.status_code, time.perf_counter() - started, response.headers, started)


async def closed_loop(
    client: httpx.AsyncClient, route: str, *, concurrency: int, duration_s: float, pause_s: float = 0.0
) -> list[Reply]:
    """``concurrency`` clients, each sending its next request when the last one is answered."""
    replies: list[Reply] = []
    stop_at = time.perf_counter() + duration_s

    async def client_loop() -> None:
        while time.perf_counter() < stop_at:
            replies.append(await predict(client, route))
            if pause_s:
                await asyncio.sleep(pause_s)

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return replies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print a chaos figure whatever pytest's capture setting."""
    with capsys.disabled():
        print(f"\n[chaos] {line}")
