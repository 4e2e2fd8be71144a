"""Runs `strata serve` as a real subprocess on loopback and waits until it is ready."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``with ServerProcess(spec) as server: server.url`` - a ready Strata server, stopped on exit."""

    def __init__(
        self,
        spec_path: Path | None = None,
        *,
        port: int | None = None,
        ready_timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
        api_key: str | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.spec_path = spec_path
        # For a spec with gateway.tls: the client side (trusted CA, a client certificate for mutual TLS).
        self.client_tls = client_tls
        self.port = port or free_port()
        self.ready_timeout_s = ready_timeout_s
        # The server's bootstrap admin key: tests authenticate with it through `headers`, `http()`
        # and `openai()`, so they never hard-code credentials.
        self.api_key = api_key or f"sk-strata-test-{secrets.token_hex(16)}"
        # Each server gets its own SQLite file unless the caller names a database (e.g. PostgreSQL).
        self._state_dir = Path(tempfile.mkdtemp(prefix="strata-test-"))
        defaults = {
            "STRATA_ADMIN_KEY": self.api_key,
            "STRATA_DATABASE_URL": f"sqlite:///{self._state_dir}/strata.db",
            "STRATA_ARTIFACTS_URL": str(self._state_dir / "artifacts"),
            "STRATA_VECTORS_URL": str(self._state_dir / "vectors"),
        }
        self.env = {**os.environ, **defaults, **(env or {})}
        self.cpus = cpus  # pin the server to these cores (benchmarks keep it off the load generator's)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.client_tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` takes to reach this server."""
        return self.client_tls or True

    @property
    def state_dir(self) -> Path:
        """Scratch folder owned by this server (its default SQLite database lives here)."""
        return self._state_dir

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def http(self, *, timeout: float = 30.0) -> httpx.Client:
        """An httpx client for this server that sends the admin key."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout, verify=self.verify)

    def async_http(self, *, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout, verify=self.verify)

    def start(self, log_path: Path) -> None:
        command = [sys.executable, "-m", "strata", "serve", "--port", str(self.port)]
        if self.spec_path is not None:
            command.insert(4, str(self.spec_path))
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=self._pin if self.cpus else None,
            )
        self.wait_ready()

    def _pin(self) -> None:
        assert self.cpus is not None
        os.sched_setaffinity(0, self.cpus)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"strata serve exited with {self.process.returncode}:\n{self.logs()}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=1.0, verify=self.verify)
            except httpx.TransportError:
                time.sleep(0.2)  # not listening yet
                continue
            if response.status_code == 200:
                return
            failures = {name: d["errors"] for name, d in response.json()["deployments"].items() if d["errors"]}
            if failures:  # a replica that failed to load will not recover by waiting
                raise RuntimeError(f"strata serve could not load {failures}:\n{self.logs()}")
            time.sleep(0.2)
        raise TimeoutError(f"strata serve was not ready after {self.ready_timeout_s} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        log_dir = Path(os.environ.get("STRATA_TEST_LOGS", "/tmp"))
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start(log_dir / f"strata-serve-{self.port}.log")
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the fixture
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self._state_dir, ignore_errors=True)


async def predict_round_robin(
    servers: Sequence[ServerProcess], api_key: str, route: str, count: int
) -> list[httpx.Response]:
    """``count`` predict calls sent at once, taking turns over ``servers`` (call ``i`` sends input ``[i]``):
    how tests check that several gateways share one limit."""
    headers = {"Authorization": f"Bearer {api_key}"}
    clients = [httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) for server in servers]
    try:
        calls = [
            clients[i % len(clients)].post(f"/v1/models/{route}/predict", json={"inputs": [i]}) for i in range(count)
        ]
        return list(await asyncio.gather(*calls))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
