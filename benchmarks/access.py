"""(d) Access layer: what authentication + rate limiting add to each request.

In process: the admission half (key lookup in the cache, scope check, budget, per-key and per-tenant
requests/min and tokens/min in memory) and the whole access share of a request: admission plus the
bookkeeping of its end (tokens charged, usage summed, budget, the audit row queued).
Served: the no-op request with a tenant key under those limits,
against the same server with access disabled - so the share of the no-op request is measured too.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import Row, load, percentile, pinned_here, served, tenant_key
from strata.access import AccessControl
from strata.record import RequestRecord
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


@dataclass(frozen=True)
class InProcess:
    admit_s: list[float]  # AccessControl.admit alone
    checks_per_s: float
    whole_s: list[float]  # admission and the bookkeeping of the request's end


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

            async def admit_once() -> RequestRecord:
                record = RequestRecord("POST", path, route="/v1/models/{model:path}/predict", model="noop")
                record.caller = await control.authenticate(authorization)
                await control.authorize(record.caller, "infer", "POST", path, "noop")
                return record

            async def whole() -> None:
                record = await admit_once()
                record.status, record.tokens_in = 200, 1
                record.hash_request(b'{"inputs": ["ping"]}')
                await control.finish(record)

            await admit_once()  # fills the cache, as the first request would
            admit = await _timed(admit_once, calls)
            started = time.perf_counter()
            for _ in range(calls):
                await admit_once()
            checks_per_s = calls / (time.perf_counter() - started)
            whole_s = await _timed(whole, calls)
        finally:
            await control.stop()
            await database.close()
    return InProcess(admit, checks_per_s, whole_s)


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
    admit, checks_per_s = measured.admit_s, measured.checks_per_s
    admit_p50_us = percentile(admit, 50) * 1e6
    whole_p50_us = percentile(measured.whole_s, 50) * 1e6
    with_auth = _served_p50_ms(duration_s, LIMITS)
    without_auth = _served_p50_ms(duration_s, {"enabled": False})
    share = whole_p50_us / 1000 / with_auth
    return [
        Row("access", "auth + limits check p50 (API key, memory)", admit_p50_us, "us", f"<= {TARGET_P50_US:g} us",
            admit_p50_us <= TARGET_P50_US),
        Row("access", "auth + limits check p99", percentile(admit, 99) * 1e6, "us"),
        Row("access", "whole access share of a request p50", whole_p50_us, "us", f"<= {TARGET_P50_US:g} us",
            whole_p50_us <= TARGET_P50_US),
        Row("access", "checks per second (one core)", checks_per_s, "checks/s", f">= {TARGET_CHECKS_PER_S:,.0f}",
            checks_per_s >= TARGET_CHECKS_PER_S),
        Row("access", "served no-op p50 with auth + limits", with_auth, "ms"),
        Row("access", "served no-op p50 with access disabled", without_auth, "ms"),
        Row("access", "access share of the served no-op p50", share * 100, "%"),
    ]  # fmt: skip
