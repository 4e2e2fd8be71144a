"""Slow and hostile clients against a real `strata serve`, with raw sockets: headers trickled byte by
byte (slowloris), connections that say nothing, a body that stops half way, headers too large, and
many idle connections. Each is cut off by its deadline, memory stays bounded, and a normal client
is served throughout. (A stream whose reader stops reading: tests/unit/gateway/test_http_protocol.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPS = Path(__file__).parent / "apps"
DEADLINE_S = 1.0  # header, body and send deadlines and keep-alive in this test's spec
IDLE_CONNECTIONS = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = yaml.safe_load((APPS / "access.yaml").read_text())
    spec["gateway"] = {"header_timeout_s": DEADLINE_S, "body_timeout_s": DEADLINE_S, "send_timeout_s": DEADLINE_S,
                       "keep_alive_s": DEADLINE_S}  # fmt: skip
    path = tmp_path_factory.mktemp("hostile") / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path) as running:
        yield running


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True if the server closes ``sock`` within ``within_s`` (what it sent before closing is ignored)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


class _Prober:
    """A well-behaved client calling the API in a loop, from its own thread, while the attack runs."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.statuses: list[int] = []
        self.slowest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.server.http(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                response = client.post("/v1/models/echo/predict", json={"inputs": [1]})
                self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
                self.statuses.append(response.status_code)
                time.sleep(0.02)

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss_mb(server: ServerProcess) -> float:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def test_trickled_headers_and_silent_connections_are_cut_off(server: ServerProcess) -> None:
    with _Prober(server) as prober:
        slow = [_connect(server) for _ in range(20)]
        silent = [_connect(server) for _ in range(20)]
        request = b"POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        started = time.monotonic()
        for index in range(len(request)):  # a byte each, every 50 ms across all: each far below any timeout
            for sock in slow:
                try:
                    sock.send(request[index : index + 1])
                except OSError:
                    break  # cut off: what this test waits for
            if time.monotonic() - started > 3 * DEADLINE_S:
                break
            time.sleep(0.05)
        assert all(_closed_by_server(sock, 3 * DEADLINE_S) for sock in slow + silent)
        for sock in slow + silent:
            sock.close()
    assert prober.statuses
    assert set(prober.statuses) == {200}
    assert prober.slowest_s < 2.0


def test_a_body_that_stops_half_way_is_cut_off(server: ServerProcess) -> None:
    with _Prober(server) as prober:
        sock = _connect(server)
        sock.sendall(
            b"POST /v1/models/echo/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.api_key.encode() + b'\r\nContent-Length: 100\r\n\r\n{"inputs": ['
        )
        assert _closed_by_server(sock, 3 * DEADLINE_S)
        sock.close()
    assert set(prober.statuses) == {200}


def test_headers_too_large_get_431(server: ServerProcess) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(200):  # 200 x 1 KiB of headers, past the 64 KiB bound
            sock.sendall(b"X-Junk: " + b"j" * 1024 + b"\r\n")
    except OSError:
        pass  # the server closed before we finished: fine
    sock.settimeout(5)
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_thousand_idle_connections_hold_little_memory_and_are_closed(server: ServerProcess) -> None:
    with server.http() as client:
        assert client.post("/v1/models/echo/predict", json={"inputs": [1]}).status_code == 200
    before = _rss_mb(server)
    with _Prober(server) as prober:
        idle = []
        for _ in range(IDLE_CONNECTIONS):
            sock = _connect(server)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # one request, then idle on keep-alive
            idle.append(sock)
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        grown = _rss_mb(server) - before
        assert all(_closed_by_server(sock, 3 * DEADLINE_S) for sock in idle)
        for sock in idle:
            sock.close()
    assert grown < 64  # about 10 KiB a connection, not megabytes
    assert set(prober.statuses) == {200}
