"""A replica that is a vLLM engine process (kind vllm): Strata starts it, health-checks it, drains and
stops it, and talks to it over its OpenAI API with the upstream replica.

Lifecycle of one replica:
1. start: spawn ``python -m <module> --model ... --port <free port>`` with a random key in
   ``VLLM_API_KEY`` (not argv: other users see argv in ``ps``, and a key that starts with '-' would
   parse as a flag) from the engine's own virtualenv (its own process group), then poll its health
   path until 200, the process exits (its log tail is the error) or ``startup_timeout_s`` passes;
2. serve: an :class:`UpstreamReplica` on http://127.0.0.1:<port>/v1 with the per-process key;
3. watch: a dead process, or one whose health check failed ``UNHEALTHY_AFTER`` times in a row, is no
   longer ``alive``, and the deployment's supervisor replaces the replica;
4. stop: requests in flight get ``drain_timeout_s`` to finish; then SIGTERM to the process group,
   SIGKILL if it has not exited ``KILL_AFTER_S`` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from strata.errors import InvalidRequest, ReplicaUnavailable
from strata.models.paths import resolve_model_path
from strata.observability.metrics import DeploymentMetrics
from strata.runtime.upstream import UpstreamReplica
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.spec import DeploymentSpec, ModelSpec
from strata.spec.engines import EngineSpec, UpstreamSpec

log = logging.getLogger(__name__)

PYTHON_ENV = "STRATA_VLLM_PYTHON"
HEALTH_INTERVAL_S = 2.0
UNHEALTHY_AFTER = 3  # failed health checks in a row before the process counts as dead
KILL_AFTER_S = 15.0
LOG_TAIL_BYTES = 4000


def engine_flags(options: dict[str, Any]) -> list[str]:
    """The model's ``options`` as engine flags: {dtype: float32, enforce_eager: true} gives
    --dtype float32 --enforce-eager (a false flag is left out)."""
    flags: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags


def engine_python(spec: EngineSpec) -> str:
    """The engine venv's interpreter; a clear error naming how to make one when there is none."""
    python = spec.python or os.environ.get(PYTHON_ENV)
    if not python:
        raise InvalidRequest(
            f"kind vllm needs the engine's interpreter: set engine.python or ${PYTHON_ENV} "
            "(create the virtualenv with `make vllm-venv`)",
            param="engine.python",
        )
    if not Path(python).exists():
        raise InvalidRequest(
            f"engine.python: {python} does not exist (create it with `make vllm-venv`)", param="engine.python"
        )
    return python


class VLLMReplica:
    """One engine process plus the upstream replica that talks to it."""

    def __init__(self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics) -> None:
        self.replica_id = f"{deployment.name}-{index}"
        self._deployment = deployment
        self._model = model
        self._index = index
        self._metrics = metrics
        self._engine = model.engine or EngineSpec()
        self._process: asyncio.subprocess.Process | None = None
        self._upstream: UpstreamReplica | None = None
        self._watch: asyncio.Task[None] | None = None
        self._failed_checks = 0
        self.log_path: Path | None = None
        self.port: int | None = None

    @property
    def ready(self) -> bool:
        return self._upstream is not None and self._upstream.ready and self.alive

    @property
    def alive(self) -> bool:
        if self._process is None:
            return True  # not started yet is not dead
        return self._process.returncode is None and self._failed_checks < UNHEALTHY_AFTER

    def stalled_s(self) -> float:
        return 0.0  # a stuck engine fails its health checks instead

    @property
    def queue_depth(self) -> int:
        return self._upstream.in_flight if self._upstream else 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        python = engine_python(self._engine)
        assert self._model.path is not None  # guaranteed by ModelSpec validation
        folder = resolve_model_path(self._model.path)
        self.port = _free_port()
        key = secrets.token_urlsafe(24)  # only Strata may call this engine's port
        command = [
            python, "-m", self._engine.module,
            "--model", str(folder),
            "--served-model-name", self._model.name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            *engine_flags(self._model.options),
            *self._engine.args,
        ]  # fmt: skip
        fd, log_name = tempfile.mkstemp(prefix=f"strata-engine-{self.replica_id}-", suffix=".log")
        self.log_path = Path(log_name)
        log.info("%s: starting engine on port %d (log %s)", self.replica_id, self.port, self.log_path)
        with os.fdopen(fd, "wb") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "VLLM_API_KEY": key},
            )
        try:
            await self._wait_healthy()
            self._upstream = await self._connect(key)
        except BaseException:
            await self._terminate()
            raise
        self._watch = asyncio.create_task(self._watch_health(), name=f"{self.replica_id}-health")

    async def _wait_healthy(self) -> None:
        assert self._process is not None
        url = f"http://127.0.0.1:{self.port}{self._engine.health_path}"
        deadline = time.monotonic() + self._engine.startup_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self._process.returncode is not None:
                    raise ReplicaUnavailable(
                        f"{self.replica_id}: the engine exited with {self._process.returncode} while loading:\n"
                        + self.log_tail()
                    )
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise ReplicaUnavailable(
                        f"{self.replica_id}: the engine was not healthy after {self._engine.startup_timeout_s:g} s:\n"
                        + self.log_tail()
                    )
                await asyncio.sleep(0.25)

    async def _connect(self, key: str) -> UpstreamReplica:
        upstream = UpstreamSpec(
            base_url=f"http://127.0.0.1:{self.port}/v1", model=self._model.name, connect_timeout_s=2.0
        )
        replica = UpstreamReplica(
            self._deployment, self._model, self._index, self._metrics, upstream=upstream, api_key=key
        )
        await replica.start()
        return replica

    async def _watch_health(self) -> None:
        """3. Count failed health checks in a row; ``alive`` turns False at UNHEALTHY_AFTER."""
        url = f"http://127.0.0.1:{self.port}{self._engine.health_path}"
        async with httpx.AsyncClient(timeout=HEALTH_INTERVAL_S) as client:
            while self._process is not None and self._process.returncode is None:
                await asyncio.sleep(HEALTH_INTERVAL_S)
                try:
                    healthy = (await client.get(url)).status_code == 200
                except httpx.HTTPError:
                    healthy = False
                self._failed_checks = 0 if healthy else self._failed_checks + 1
                if not healthy:
                    log.warning("%s: engine health check failed (%d in a row)", self.replica_id, self._failed_checks)

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(max(0, self.log_path.stat().st_size - LOG_TAIL_BYTES))
            return handle.read().decode(errors="replace")

    async def stop(self) -> None:
        """4. Drain, then terminate the engine's process group."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._upstream is not None:
            if self.alive:
                await self._upstream.drain(self._engine.drain_timeout_s)
            await self._upstream.stop()
        await self._terminate()

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), KILL_AFTER_S)
        except TimeoutError:
            log.warning("%s: engine ignored SIGTERM for %g s; killing it", self.replica_id, KILL_AFTER_S)
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()

    async def infer(self, item: Any) -> Any:
        raise InvalidRequest(f"model '{self._model.name}' only generates text", param="model")

    def generate(self, request: GenerationRequest) -> GenerationStream:
        if self._upstream is None:
            raise ReplicaUnavailable(f"{self.replica_id}: the engine is not running")
        return self._upstream.generate(request)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, signum)  # the engine's own children (vLLM's spawned engine core) go with it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
