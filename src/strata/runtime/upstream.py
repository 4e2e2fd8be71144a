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
from strata.serving.generation import (
    GenerationEvent,
    GenerationRequest,
    GenerationStream,
    JsonConstraint,
    TokenLogprob,
)
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
    # The rest only when asked for: an upstream that lacks a feature then refuses it (a 400 naming
    # the field reaches the caller) instead of every request carrying it.
    if params.n > 1:
        body["n"] = params.n
    if params.presence_penalty:
        body["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        body["frequency_penalty"] = params.frequency_penalty
    if params.logprobs is not None:
        if request.messages is not None:
            body["logprobs"], body["top_logprobs"] = True, params.logprobs
        else:
            body["logprobs"] = params.logprobs
    if request.constraint is not None:
        body["response_format"] = _response_format(request.constraint)
    return body


def _response_format(constraint: JsonConstraint) -> dict[str, Any]:
    """OpenAI's ``response_format`` for the constraint (vLLM, SGLang and llama.cpp's server take it
    and decode under the grammar themselves)."""
    schema = orjson.loads(constraint.schema)
    if schema == {"type": "object"}:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}


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
        """Text events per choice as chunks arrive; the finish reasons are held back until the usage
        chunk that follows them (or the stream's end), so the last events carry the upstream's exact
        counts. With n > 1 the upstream counts all choices together: each choice is credited what it
        streamed (its tokens' log-probabilities, else one token per chunk) and the last one the rest,
        so the total billed is the upstream's."""
        n = self._request.params.n
        prompt_tokens, usage_total = 0, None
        counted = [0] * n
        finished: dict[int, tuple[str, str, tuple[TokenLogprob, ...]]] = {}  # index: reason, text, logprobs
        async for line in response.aiter_lines():
            if line == DONE_LINE or self.cancelled:
                break
            for chunk in parse_line(line):
                if chunk.prompt_tokens is not None or chunk.completion_tokens is not None:
                    prompt_tokens, usage_total = chunk.prompt_tokens or 0, chunk.completion_tokens or 0
                if not chunk.text and not chunk.logprobs and chunk.finish_reason is None:
                    continue  # a usage or role chunk
                index = chunk.index
                if not 0 <= index < n:
                    raise ModelFailed(f"{self._replica.replica_id}: upstream sent choice {index} of {n}")
                logprobs = tuple(TokenLogprob(token, logprob, top) for token, logprob, top in chunk.logprobs)
                counted[index] += len(logprobs) or (1 if chunk.text else 0)
                if chunk.finish_reason is not None:
                    finished[index] = (chunk.finish_reason, chunk.text, logprobs)
                elif index not in finished:
                    yield GenerationEvent(
                        chunk.text, prompt_tokens, counted[index], index=index, open_choices=n - len(finished),
                        logprobs=logprobs,
                    )  # fmt: skip
        if self.cancelled:
            return
        if not finished:
            raise ModelFailed(f"{self._replica.replica_id}: the upstream stream ended without a finish reason")
        if len(finished) < n:  # e.g. a server that ignores n
            replica = self._replica.replica_id
            raise ModelFailed(f"{replica}: the upstream finished {len(finished)} of the {n} choices asked")
        if usage_total is not None:
            counted[-1] = max(0, usage_total - sum(counted[:-1]))
        self._replica.metrics.tokens_in.inc(prompt_tokens)
        self._replica.metrics.tokens_out.inc(sum(counted))
        for index in range(n):
            reason, text, logprobs = finished[index]
            yield GenerationEvent(
                text, prompt_tokens, counted[index], finish_reason=reason, index=index,
                open_choices=n - 1 - index, logprobs=logprobs,
            )  # fmt: skip


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
