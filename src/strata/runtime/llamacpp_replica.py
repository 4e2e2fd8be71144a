"""A replica that runs a GGUF model with llama.cpp (kind llama-cpp, through llama-cpp-python).

llama.cpp's Python API decodes one sequence at a time, so a replica is a queue and one worker thread:
1. wait for a request (a bounded queue: beyond ``max_queue`` it is refused with 503);
2. render the chat with the GGUF's own chat template, tokenize, check the context;
3. stream the completion token by token, publishing each piece of text to the caller's event loop,
   and stop at once when the caller leaves;
4. publish the last event with the finish reason and the token counts.
llama.cpp keeps the previous prompt's KV cache and reuses its longest common prefix, so requests that
share a system prompt skip most of their prefill on the same replica.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from strata.errors import InvalidRequest, Overloaded, ReplicaUnavailable
from strata.models.paths import BUILTIN_PREFIX
from strata.observability.metrics import DeploymentMetrics
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream
from strata.spec import DeploymentSpec, ModelSpec

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
DEFAULT_OPTIONS: dict[str, Any] = {"n_ctx": 0, "verbose": False}  # n_ctx 0: the model's own context length
EXTRA = "llama-cpp"  # pip install 'strata[llama-cpp]'


@dataclass(slots=True)
class _Job:
    request: GenerationRequest
    stream: GenerationStream
    submitted_at: float


def gguf_path(path: str) -> Path:
    """A GGUF file: ``builtin:NAME`` for the ones Strata ships (the chat model in 8 and 4 bits), or a local path."""
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        shipped = Path(str(resources.files("strata") / "assets" / "strata-chat-tiny-gguf"))
        known = sorted(file.stem for file in shipped.glob("*.gguf"))
        if name not in known:
            raise InvalidRequest(f"path: unknown builtin GGUF model '{name}' (known: {', '.join(known)})", param="path")
        return shipped / f"{name}.gguf"
    return Path(path).expanduser()


def load_llama(path: Path, options: dict[str, Any]) -> Any:
    """A ``llama_cpp.Llama`` for the GGUF file; the optional extra is named when it is missing."""
    try:
        import llama_cpp  # an optional extra: imported only by this kind
    except ImportError as error:
        raise InvalidRequest(
            f"kind llama-cpp needs llama-cpp-python: pip install 'strata[{EXTRA}]' ({error})", param="kind"
        ) from None
    if not path.is_file():
        raise InvalidRequest(f"path: {path} is not a GGUF file", param="path")
    return llama_cpp.Llama(model_path=str(path), **{**DEFAULT_OPTIONS, **options})


def chat_prompt(llm: Any, messages: tuple[dict[str, str], ...]) -> str:
    """The chat rendered with the GGUF's chat template (written from the model's tokenizer by the converter)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # the optional extra

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise InvalidRequest("this GGUF file has no chat template: send a prompt to /v1/completions", param="messages")
    eos = llm.detokenize([llm.token_eos()], special=True).decode(errors="replace")
    bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="replace")
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    chat: Any = list(messages)  # llama_cpp types each role's message; ours are plain role/content mappings
    return str(formatter(messages=chat).prompt)


class LlamaCppReplica:
    def __init__(self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics) -> None:
        self.replica_id = f"{deployment.name}-{index}"
        self._model = model
        self._metrics = metrics
        self._max_queue = deployment.max_queue
        self._llm: Any = None
        self._waiting: deque[_Job] = deque()
        self._work = threading.Condition()
        self._stopping = False
        self._busy_since: float | None = None
        self._thread = threading.Thread(target=self._loop, name=f"{self.replica_id}-llama", daemon=True)

    @property
    def ready(self) -> bool:
        return self._llm is not None and self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or not self._thread.ident  # not started yet is not dead

    def stalled_s(self) -> float:
        busy_since = self._busy_since
        return 0.0 if busy_since is None else time.perf_counter() - busy_since

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    async def start(self) -> None:
        assert self._model.path is not None  # guaranteed by ModelSpec validation
        path = gguf_path(self._model.path)
        self._llm = await asyncio.to_thread(load_llama, path, self._model.options)
        self._thread.start()

    async def stop(self) -> None:
        with self._work:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
            self._work.notify()
        for job in waiting:
            job.stream.publish(GenerationEvent("", 0, 0, error=f"{self.replica_id}: the replica stopped"))
        await asyncio.to_thread(self._thread.join, 10)

    async def infer(self, item: Any) -> Any:
        raise InvalidRequest(f"model '{self._model.name}' only generates text", param="model")

    def generate(self, request: GenerationRequest) -> GenerationStream:
        stream = GenerationStream(asyncio.get_running_loop())
        with self._work:
            if self._stopping or (self._thread.ident and not self._thread.is_alive()):
                raise ReplicaUnavailable(f"{self.replica_id}: the replica's worker is not running")
            if len(self._waiting) >= self._max_queue:
                raise Overloaded(f"{self.replica_id}: queue is full ({self._max_queue} waiting)")
            self._waiting.append(_Job(request, stream, time.perf_counter()))
            self._metrics.queue_depth.inc()
            self._work.notify()
        return stream

    def _loop(self) -> None:
        while True:
            with self._work:
                while not self._waiting and not self._stopping:
                    self._work.wait(IDLE_POLL_S)
                if self._stopping:
                    return
                job = self._waiting.popleft()
                self._metrics.queue_depth.dec()
            if job.stream.cancelled:
                continue
            self._metrics.queue_wait.observe(time.perf_counter() - job.submitted_at)
            self._busy_since = time.perf_counter()
            self._metrics.running.set(1)
            try:
                self._run(job)
            except Exception as error:  # boundary: one failed generation must not stop the replica
                log.exception("%s: generation failed", self.replica_id)
                job.stream.publish(GenerationEvent("", 0, 0, error=f"{self.replica_id}: generation failed: {error!r}"))
            finally:
                self._busy_since = None
                self._metrics.running.set(0)

    def _run(self, job: _Job) -> None:
        request, llm = job.request, self._llm
        prompt_ids = self._prompt_ids(job)
        if prompt_ids is None:
            return
        from llama_cpp import LogitsProcessorList  # the optional extra

        params = request.params
        sampled = 0

        def count(_ids: Any, logits: Any) -> Any:  # called once per sampled token: exact completion tokens
            nonlocal sampled
            sampled += 1
            return logits

        chunks = llm.create_completion(
            prompt=prompt_ids,
            max_tokens=params.max_tokens or -1,  # -1: until EOS or the context is full
            temperature=0.0 if params.greedy else params.temperature,  # 0 is greedy in llama.cpp
            top_p=params.top_p,
            top_k=0,  # OpenAI semantics: no top-k, no min-p, no repeat penalty unless asked
            min_p=0.0,
            repeat_penalty=1.0,
            stop=list(params.stop),
            seed=params.seed,
            logit_bias={llm.token_eos(): float("-inf")} if params.ignore_eos else None,
            logits_processor=LogitsProcessorList([count]),
            stream=True,
        )
        try:
            for chunk in chunks:
                if job.stream.cancelled:
                    return  # closing the iterator stops decoding
                choice = chunk["choices"][0]
                finish_reason = choice.get("finish_reason")
                job.stream.publish(
                    GenerationEvent(choice["text"], len(prompt_ids), sampled, finish_reason=finish_reason)
                )
                if finish_reason is not None:
                    self._metrics.tokens_in.inc(len(prompt_ids))
                    self._metrics.tokens_out.inc(sampled)
                    return
        finally:
            chunks.close()

    def _prompt_ids(self, job: _Job) -> list[int] | None:
        """2. Token ids of the prompt, or None (and a 400 sent) when it is empty or too long."""
        request, llm = job.request, self._llm
        param = "messages" if request.messages is not None else "prompt"
        try:
            if request.messages is not None:
                ids = llm.tokenize(chat_prompt(llm, request.messages).encode(), add_bos=False, special=True)
            else:
                ids = llm.tokenize((request.prompt or "").encode(), add_bos=True, special=False)
        except InvalidRequest as error:
            job.stream.publish(GenerationEvent("", 0, 0, error=error.message, error_param=error.param))
            return None
        limit = llm.n_ctx()
        if len(ids) >= limit:
            message = f"the prompt is {len(ids)} tokens; this model's context is {limit} tokens"
            job.stream.publish(GenerationEvent("", len(ids), 0, error=message, error_param=param))
            return None
        max_tokens = request.params.max_tokens
        if max_tokens is not None and len(ids) + max_tokens > limit:
            message = (
                f"max_tokens is too large: the prompt is {len(ids)} tokens, this model's context is {limit}, "
                f"so at most {limit - len(ids)} tokens can be generated"
            )
            job.stream.publish(GenerationEvent("", len(ids), 0, error=message, error_param="max_tokens"))
            return None
        return list(ids)
