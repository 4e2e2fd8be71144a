"""A private redis-server for outage tests, on a free port, stopped and started by the test (the shared
server on 6379 is never touched)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from strata.testing.server import free_port


def available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it answers PING."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self.folder)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            result = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False)
            if result.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise TimeoutError("the private redis-server did not start")

    def stop(self) -> None:
        """Killed, as when the server or its host dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
