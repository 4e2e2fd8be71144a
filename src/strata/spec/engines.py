"""Spec of models served by another engine: an OpenAI-compatible server Strata calls (``upstream``)
and an engine process Strata starts itself (``engine``, kind vllm).

Secrets never live here: ``api_key_env`` names the environment variable that holds the key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSpec(_Spec):
    base_url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Base URL of the OpenAI-compatible API, up to and including its version, e.g. "
        "http://127.0.0.1:8001/v1 or https://api.openai.com/v1; Strata calls {base_url}/chat/completions.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="Model name sent upstream; defaults to this model's own name.",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Name of the environment variable holding the upstream's API key (sent as a Bearer "
        "token). The key itself never goes in the spec, logs or errors; unset means no Authorization header.",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600, description="Longest wait to open a connection.")
    read_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest wait for the upstream's next bytes (the first token included); past it the try fails "
        "and may be retried or fall back. The whole request is bounded by the client's deadline.",
    )
    max_connections: int = Field(
        default=64, ge=1, le=4096, description="Connections one replica keeps open to the upstream (pooled)."
    )


class EngineSpec(_Spec):
    python: str | None = Field(
        default=None,
        description="Interpreter of the engine's own virtualenv (e.g. /work/vllm-venv/bin/python); defaults to "
        "$STRATA_VLLM_PYTHON. The engine never runs in Strata's environment: its pins differ.",
    )
    module: str = Field(
        default="vllm.entrypoints.openai.api_server",
        pattern=r"^[A-Za-z_][\w.]*$",
        description="Python module run with -m as the engine's server. It must take vLLM's --model, "
        "--served-model-name, --host, --port and --api-key flags and serve the OpenAI API under /v1.",
    )
    health_path: str = Field(
        default="/health", pattern=r"^/\S*$", description="Path answering 200 once the engine is ready."
    )
    args: list[str] = Field(
        default_factory=list,
        description="Extra command-line arguments for the engine's OpenAI server, e.g. ['--dtype', 'float32', "
        "'--enforce-eager']; Strata sets the model, host and port itself.",
    )
    startup_timeout_s: float = Field(
        default=600.0, gt=0, le=7200, description="Longest one engine process may take to load and answer /health."
    )
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="On stop or restart, how long requests in flight may finish before the process is terminated.",
    )


class PrefixRoutingSpec(_Spec):
    enabled: bool = Field(
        default=False,
        description="Send a text-generation request to the replica that was sent its prompt's prefix (for engines "
        "with a prefix cache: vllm, llama-cpp, an upstream), unless that replica is busier than the least busy one "
        "by more than max_imbalance requests; otherwise the usual power-of-two-choices pick.",
    )
    block_chars: int = Field(
        default=256, ge=16, le=65536, description="Prompt characters per hashed block (the unit of prefix matching)."
    )
    max_imbalance: int = Field(
        default=4,
        ge=0,
        le=4096,
        description="How many more outstanding requests than the least busy replica the prefix's replica may have.",
    )
    capacity_blocks: int = Field(
        default=65536, ge=1, le=10_000_000, description="Prefix blocks remembered per deployment (least recent out)."
    )
