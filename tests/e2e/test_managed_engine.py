"""kind: vllm end to end: Strata starts an engine process per replica, health-checks it, restarts it
when it dies and stops it with the server; clients reach it through Strata's gateway with the
official openai client.

Two engines run the same tests: vLLM itself (its own virtualenv, see `make vllm-venv`; skipped with
the reason when absent) and Strata's stand-in engine (``strata.testing.engine``: the same command
line, Strata's own backend), so the lifecycle is tested on every machine.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHAT = "strata-chat-tiny"
REPO = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def vllm_python() -> str | None:
    """The vLLM virtualenv's interpreter: $STRATA_VLLM_PYTHON, else .vllm-venv in the repository."""
    candidate = os.environ.get("STRATA_VLLM_PYTHON") or str(REPO / ".vllm-venv" / "bin" / "python")
    return candidate if Path(candidate).exists() else None


def engine_spec(engine: str) -> dict[str, object]:
    if engine == "stand-in":
        return {"python": sys.executable, "module": "strata.testing.engine", "health_path": "/readyz"}
    python = vllm_python()
    if python is None:
        pytest.skip("vLLM's virtualenv is absent: run `make vllm-venv` (or set STRATA_VLLM_PYTHON) to test kind vllm")
    # CPU: float32 and eager mode are what vLLM's CPU backend serves the shipped model with; it reserves
    # --gpu-memory-utilization of the machine's memory (despite the name), 0.92 by default: too much on a shared host.
    args = ["--dtype", "float32", "--enforce-eager", "--gpu-memory-utilization", "0.2"]
    return {"python": python, "args": args, "startup_timeout_s": 300}


def engine_pids(server: ServerProcess) -> list[int]:
    """Engine processes the server started (its direct children running an engine module)."""
    assert server.process is not None
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if parent == server.process.pid and (b"--served-model-name" in command or b"strata-engine-" in command):
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture(scope="module", params=["stand-in", pytest.param("vllm", marks=pytest.mark.vllm)])
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = {
        "name": "managed",
        "models": [
            {"name": CHAT, "kind": "vllm", "path": f"builtin:{CHAT}", "engine": engine_spec(request.param)},
        ],
        "deployments": [{"name": "engine", "model": CHAT, "health": {"check_interval_ms": 200}}],
        "routes": [{"name": CHAT, "deployment": "engine"}],
    }
    path = tmp_path_factory.mktemp("managed") / "managed.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path, ready_timeout_s=360) as server:
        yield server
        pids = engine_pids(server)
        assert pids, "the engine process was not found"
        server.stop()
        for pid in pids:  # stopping Strata stops its engines
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture(scope="module")
def client(front: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=front.api_key, max_retries=0, timeout=120)


def test_greedy_answer_through_the_engine(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0, max_tokens=16)
    assert reply.choices[0].message.content == "The capital of France is Paris."
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_streams_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=CHAT, messages=QUESTION, temperature=0, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The capital of France is Paris."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_a_killed_engine_is_replaced(client: openai.OpenAI, front: ServerProcess) -> None:
    (old,) = engine_pids(front)
    os.killpg(old, signal.SIGKILL)
    deadline = time.monotonic() + 300
    while True:
        pids = engine_pids(front)
        if pids and pids != [old]:
            try:
                reply = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0, max_tokens=16)
            except (openai.InternalServerError, openai.APIStatusError):
                pass  # the new engine is still loading
            else:
                assert reply.choices[0].message.content == "The capital of France is Paris."
                return
        assert time.monotonic() < deadline, f"the engine was not replaced:\n{front.logs()[-3000:]}"
        time.sleep(0.5)


def test_the_engine_key_stays_off_the_command_line(front: ServerProcess) -> None:
    """Only Strata may call the engine's port: its key travels in the environment, never in argv,
    which every local user can read in `ps` (and a key starting with '-' would parse as a flag)."""
    (pid,) = engine_pids(front)
    environ = dict(
        entry.split(b"=", 1) for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in entry
    )
    key = environ[b"VLLM_API_KEY"]
    assert len(key) >= 32
    assert key not in Path(f"/proc/{pid}/cmdline").read_bytes()
