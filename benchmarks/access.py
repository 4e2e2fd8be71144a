"""(d) Access layer: what authentication + rate limiting add to each request.

In process: ``AccessControl.admit`` (key lookup in the cache, scope check, per-key and per-tenant
requests/min and tokens/min in memory) and the whole access middleware around an empty ASGI app,
against the same app without it. Served: the no-op request with a tenant key under those limits,
against the same server with access disabled - so the share of the no-op request is measured too.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import Row, load, percentile, pinned_here, served, tenant_key
from strata.access import AccessControl, AccessMiddleware
from strata.spec import AppSpec
from strata.store import Database

TARGET_P50_US = 100.0
TARGET_CHECKS_PER_S = 10_000.0
LIMITS = {
    "per_key": {"requests_per_minute": 100_000_000, "tokens_per_minute": 100_000_000},
    "per_tenant": {"requests_per_minute": 100_000_000, "tokens_per_minute": 100_000_000},
}


def _spec(database_url: str) -> AppSpec:
    return AppSpec.model_validate({**NOOP_SPEC, "access": LIMITS, "store": {"database_url": database_url}})


async def _timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        timings.append(time.perf_counter() - started)
    return timings


async def _empty_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@dataclass(frozen=True)
class InProcess:
    admit_s: list[float]  # AccessControl.admit alone
    checks_per_s: float
    bare_s: list[float]  # an empty ASGI app
    wrapped_s: list[float]  # the same app behind the access middleware


async def _in_process(calls: int) -> InProcess:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{Path(folder) / 'strata.db'}")
        await database.migrate()
        control = AccessControl(_spec(str(database.url)), database)
        await control.start()
        try:
            _, key = await control.keys.create("bench", ["infer"])
            authorization = f"Bearer {key}"
            path = "/v1/models/noop/predict"
            await control.admit("POST", path, authorization)  # fills the cache, as the first request would
            admit = await _timed(lambda: control.admit("POST", path, authorization), calls)
            started = time.perf_counter()
            for _ in range(calls):
                await control.admit("POST", path, authorization)
            checks_per_s = calls / (time.perf_counter() - started)
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "headers": [(b"authorization", authorization.encode())],
            }
            middleware = AccessMiddleware(_empty_app, control)

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b'{"inputs": ["ping"]}', "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                return None

            bare = await _timed(lambda: _empty_app(dict(scope), receive, send), calls)
            wrapped = await _timed(lambda: middleware(copy.copy(scope), receive, send), calls)
        finally:
            await control.stop()
            await database.close()
    return InProcess(admit, checks_per_s, bare, wrapped)


def _served_p50_ms(duration_s: float, access: dict[str, Any]) -> float:
    spec = {**NOOP_SPEC, "access": access}
    with served(spec) as server:
        if access.get("enabled", True):
            server.api_key = tenant_key(server, "bench")  # the load generator sends server.api_key
        result = load(server, "/v1/models/noop/predict", {"inputs": ["ping"]}, concurrency=1, duration_s=duration_s)
        assert result.errors == 0, result.statuses
        return result.percentile_ms(50)


def run(duration_s: float) -> list[Row]:
    with pinned_here():
        measured = asyncio.run(_in_process(20_000))
    admit, bare, wrapped, checks_per_s = measured.admit_s, measured.bare_s, measured.wrapped_s, measured.checks_per_s
    admit_p50_us = percentile(admit, 50) * 1e6
    middleware_p50_us = (percentile(wrapped, 50) - percentile(bare, 50)) * 1e6
    with_auth = _served_p50_ms(duration_s, LIMITS)
    without_auth = _served_p50_ms(duration_s, {"enabled": False})
    share = middleware_p50_us / 1000 / with_auth
    return [
        Row("access", "auth + limits check p50 (API key, memory)", admit_p50_us, "us", f"<= {TARGET_P50_US:g} us",
            admit_p50_us <= TARGET_P50_US),
        Row("access", "auth + limits check p99", percentile(admit, 99) * 1e6, "us"),
        Row("access", "whole access middleware p50 (adds)", middleware_p50_us, "us", f"<= {TARGET_P50_US:g} us",
            middleware_p50_us <= TARGET_P50_US),
        Row("access", "checks per second (one core)", checks_per_s, "checks/s", f">= {TARGET_CHECKS_PER_S:,.0f}",
            checks_per_s >= TARGET_CHECKS_PER_S),
        Row("access", "served no-op p50 with auth + limits", with_auth, "ms"),
        Row("access", "served no-op p50 with access disabled", without_auth, "ms"),
        Row("access", "middleware share of the served no-op p50", share * 100, "%"),
    ]  # fmt: skip
