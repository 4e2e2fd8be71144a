"""A replica served by an OpenAI-compatible server (kind openai, and each engine process of kind vllm).

The replica holds one pooled ``httpx.AsyncClient``; a generation is one streamed POST read on the
event loop, so no thread is involved. Strata's own layers stay in front: admission, the per-replica
and per-deployment breakers, retries on another replica until the first token, and route fallbacks
(an upstream that refuses connections, times out or answers 5xx/429 fails the try the same way a
crashed local replica does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from strata.errors import InvalidRequest, ModelFailed, Overloaded, ReplicaUnavailable
from strata.models.openai_upstream import DONE, parse_line, status_error
from strata.observability.metrics import DeploymentMetrics
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream
from strata.spec import DeploymentSpec, ModelSpec
from strata.spec.engines import UpstreamSpec

log = logging.getLogger(__name__)

DONE_LINE = f"data: {DONE}"


def request_body(model: str, request: GenerationRequest) -> dict[str, Any]:
    """The JSON body for /chat/completions (a chat) or /completions (a prompt). Always streamed with
    usage: the first token marks the end of safe retries, and the usage chunk gives exact counts."""
    params = request.params
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if request.messages is not None:
        body["messages"] = list(request.messages)
    else:
        body["prompt"] = request.prompt or ""
    if params.max_tokens is not None:
        body["max_tokens"] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if params.ignore_eos:  # a vLLM (and Strata) extension: sent only when asked for
        body["ignore_eos"] = True
    return body


class UpstreamStream(GenerationStream):
    """One generation read from the upstream's SSE stream. The POST is sent when the first event is
    awaited; leaving early (``close`` or closing ``events``) closes the upstream response with it."""

    def __init__(self, replica: UpstreamReplica, request: GenerationRequest) -> None:
        super().__init__(asyncio.get_running_loop())
        self._replica = replica
        self._request = request

    async def events(self) -> AsyncIterator[GenerationEvent]:
        replica = self._replica
        client = replica.client
        spec = replica.upstream
        path = "/chat/completions" if self._request.messages is not None else "/completions"
        content = orjson.dumps(request_body(replica.upstream_model, self._request))
        replica.began()
        try:
            async with client.stream("POST", path, content=content) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    raise status_error(response.status_code, body, response.headers.get("retry-after"))
                async for event in self._read(response):
                    yield event
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise ReplicaUnavailable(f"{replica.replica_id}: upstream {spec.base_url} unreachable: {error}") from None
        except httpx.PoolTimeout:
            raise Overloaded(f"{replica.replica_id}: all {spec.max_connections} upstream connections busy") from None
        except httpx.ReadTimeout:
            raise ModelFailed(f"{replica.replica_id}: upstream sent nothing for {spec.read_timeout_s:g} s") from None
        except httpx.HTTPError as error:  # the connection broke mid-stream, or a protocol error
            raise ModelFailed(f"{replica.replica_id}: upstream connection failed: {error!r}") from None
        finally:
            replica.ended()
            self.close()

    async def _read(self, response: httpx.Response) -> AsyncIterator[GenerationEvent]:
        """Text events as chunks arrive; the finish reason is held back until the usage chunk that
        follows it (or the stream's end), so the last event carries the upstream's exact counts."""
        prompt_tokens = completion_tokens = 0
        usage_seen = False
        finish_reason: str | None = None
        tail = ""  # text that came with the finish reason
        async for line in response.aiter_lines():
            if line == DONE_LINE or self.cancelled:
                break
            chunk = parse_line(line)
            if chunk is None:
                continue
            if chunk.prompt_tokens is not None or chunk.completion_tokens is not None:
                usage_seen = True
                prompt_tokens = chunk.prompt_tokens or 0
                completion_tokens = chunk.completion_tokens or 0
            elif chunk.text and not usage_seen:
                completion_tokens += 1  # a server without usage: one chunk is about one token
            if chunk.finish_reason is not None:
                finish_reason, tail = chunk.finish_reason, tail + chunk.text
            elif chunk.text and finish_reason is None:
                yield GenerationEvent(chunk.text, prompt_tokens, completion_tokens)
        if self.cancelled:
            return
        if finish_reason is None:
            raise ModelFailed(f"{self._replica.replica_id}: the upstream stream ended without a finish reason")
        self._replica.metrics.tokens_in.inc(prompt_tokens)
        self._replica.metrics.tokens_out.inc(completion_tokens)
        yield GenerationEvent(tail, prompt_tokens, completion_tokens, finish_reason=finish_reason)


class UpstreamReplica:
    """A replica whose model is an OpenAI-compatible server: ready once its pooled client is open."""

    def __init__(
        self,
        deployment: DeploymentSpec,
        model: ModelSpec,
        index: int,
        metrics: DeploymentMetrics,
        *,
        upstream: UpstreamSpec | None = None,
        api_key: str | None = None,
    ) -> None:
        self.replica_id = f"{deployment.name}-{index}"
        spec = upstream or model.upstream
        if spec is None:
            raise ValueError(f"model '{model.name}' has no upstream to call")
        self.upstream = spec
        self.upstream_model = self.upstream.model or model.name
        self.metrics = metrics
        self.in_flight = 0
        self._api_key = api_key  # given by a managed engine; otherwise read from upstream.api_key_env
        self._model_name = model.name
        self._client: httpx.AsyncClient | None = None
        self._idle = asyncio.Event()  # no generation in flight (drain waits for it)
        self._idle.set()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise ReplicaUnavailable(f"{self.replica_id}: stopped")
        return self._client

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def alive(self) -> bool:
        return True  # the upstream's health shows in failed tries: the breakers eject it, not a restart

    def stalled_s(self) -> float:
        return 0.0  # a silent upstream is bounded by read_timeout_s instead

    @property
    def queue_depth(self) -> int:
        return self.in_flight

    async def start(self) -> None:
        """Open the pooled client and probe {base_url}/models once. An unreachable upstream does not fail
        the start: a provider may be down now and back later, and the breakers judge it per try."""
        self._client = self._build_client()
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError as error:
            log.warning("%s: upstream %s not reachable yet: %r", self.replica_id, self.upstream.base_url, error)
            return
        if response.status_code != 200:
            log.warning(
                "%s: upstream %s/models answered HTTP %d", self.replica_id, self.upstream.base_url, response.status_code
            )

    def _build_client(self) -> httpx.AsyncClient:
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        key = self._api_key
        if key is None and self.upstream.api_key_env is not None:
            key = os.environ.get(self.upstream.api_key_env)
            if not key:
                name = self.upstream.api_key_env
                raise InvalidRequest(
                    f"model '{self._model_name}': environment variable {name} (upstream.api_key_env) is not set",
                    param="upstream.api_key_env",
                )
        if key:
            headers["authorization"] = f"Bearer {key}"
        spec = self.upstream
        timeout = httpx.Timeout(
            connect=spec.connect_timeout_s,
            read=spec.read_timeout_s,
            write=spec.read_timeout_s,
            pool=spec.connect_timeout_s,
        )
        limits = httpx.Limits(max_connections=spec.max_connections, max_keepalive_connections=spec.max_connections)
        return httpx.AsyncClient(base_url=spec.base_url.rstrip("/"), headers=headers, timeout=timeout, limits=limits)

    def began(self) -> None:
        self.in_flight += 1
        self.metrics.running.inc()
        self._idle.clear()

    def ended(self) -> None:
        self.in_flight -= 1
        self.metrics.running.dec()
        if not self.in_flight:
            self._idle.set()

    async def drain(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for the generations in flight to finish; new ones are the router's to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def infer(self, item: Any) -> Any:
        raise InvalidRequest(f"model '{self._model_name}' only generates text", param="model")

    def generate(self, request: GenerationRequest) -> GenerationStream:
        self.client  # noqa: B018 - refused at once (another replica may take it) when stopped
        return UpstreamStream(self, request)
