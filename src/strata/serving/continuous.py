"""Continuous (iteration-level) batching for text generation.

One thread per replica runs the loop below. Between two decode steps, waiting requests join
the running batch and finished or cancelled ones leave it, so a short request never waits for
a long one and a free slot is reused at the next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from strata.errors import InvalidRequest, Overloaded, ReplicaUnavailable
from strata.models.base import DecodeEngine, Detokenizer, TokenConstraint
from strata.observability.metrics import DeploymentMetrics
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream, TokenLogprob
from strata.serving.logprobs import token_logprobs
from strata.serving.sampling import apply_penalties, choice_seed, sample_next

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.1


@dataclass(slots=True)
class _Group:
    """The choices of one request (n > 1) share its stream; it ends when none is left open."""

    open: int


@dataclass(slots=True)
class _Sequence:
    request: GenerationRequest
    stream: GenerationStream
    detokenizer: Detokenizer
    generator: torch.Generator | None
    group: _Group
    index: int = 0  # the choice this row decodes
    submitted_at: float = field(default_factory=time.perf_counter)
    prompt_ids: list[int] = field(default_factory=list)
    generated: int = 0
    last_token: int = 0
    text: str = ""
    emitted_chars: int = 0
    finish_reason: str | None = None
    counts: dict[int, int] | None = None  # generated token -> times, kept only for penalties
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet published
    constraint: TokenConstraint | None = None  # the JSON grammar of a structured output

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


class ContinuousBatcher:
    def __init__(
        self,
        engine: DecodeEngine[Any],
        *,
        max_running: int,
        max_queue: int,
        metrics: DeploymentMetrics,
        name: str = "generator",
    ) -> None:
        self._engine = engine
        self._max_running = max_running
        self._max_queue = max_queue
        self._metrics = metrics
        self._name = name
        self._waiting: deque[_Sequence] = deque()
        self._work = threading.Condition()
        self._running: list[_Sequence] = []
        self._state: Any = None  # the engine's record of the running batch
        self._stopping = False
        self._dead = False
        self._busy_since: float | None = None  # when the current prefill or decode step began
        self._thread = threading.Thread(target=self._supervised_loop, name=f"{name}-decode", daemon=True)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or not self._thread.ident  # not started yet is not dead

    def stalled_s(self) -> float:
        busy_since = self._busy_since
        return 0.0 if busy_since is None else time.perf_counter() - busy_since

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._work:
            self._stopping = True
            self._work.notify()
        self._thread.join(timeout=10)
        if self._thread.is_alive():  # stuck inside a step: its clients must not wait for it
            with self._work:
                waiting, self._waiting = list(self._waiting), deque()
            for sequence in [*list(self._running), *waiting]:
                self._publish_error(sequence, f"{self._name}: the replica stalled and was stopped")

    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue a request (from the event loop); its stream yields the text as it is decoded."""
        if request.params.n > self._max_running:
            message = f"n is {request.params.n}; this deployment decodes at most {self._max_running} sequences at once"
            raise InvalidRequest(message, param="n")
        stream = GenerationStream(asyncio.get_running_loop())
        sequence = self._choice(request, stream, _Group(open=request.params.n), 0)
        with self._work:
            if self._dead:
                raise ReplicaUnavailable(f"{self._name}: the replica's worker died")
            if len(self._waiting) >= self._max_queue:
                raise Overloaded(f"{self._name}: queue is full ({self._max_queue} waiting)")
            self._waiting.append(sequence)
            self._metrics.queue_depth.inc()
            self._work.notify()
        return stream

    def _choice(self, request: GenerationRequest, stream: GenerationStream, group: _Group, index: int) -> _Sequence:
        seed = request.params.seed
        generator = torch.Generator().manual_seed(choice_seed(seed, index)) if seed is not None else None
        counts: dict[int, int] | None = {} if request.params.penalized else None
        return _Sequence(request, stream, self._engine.detokenizer(), generator, group, index, counts=counts)

    # The loop: admit, drop the cancelled, step, retire. It runs until stop().

    def _supervised_loop(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # boundary: the decode thread dies; its clients must hear of it
            log.exception("%s: the decode thread died", self._name)
            with self._work:
                self._dead = True  # from now on submit() refuses: nobody would serve the queue
                waiting, self._waiting = list(self._waiting), deque()
            for sequence in [*self._running, *waiting]:
                self._publish_error(sequence, f"{self._name}: the replica's worker died: {error!r}")
            self._running = []  # the thread ends here: `alive` turns False and the supervisor restarts it

    def _loop(self) -> None:
        with torch.inference_mode():
            while not self._stopping:
                self._admit()
                self._drop_cancelled()
                if not self._running:
                    self._wait_for_work()
                    continue
                try:
                    self._busy_since = time.perf_counter()
                    self._step()
                except Exception as error:  # boundary: fail this batch, keep the replica serving
                    log.exception("%s: decode step failed", self._name)
                    self._fail_running(f"{self._name}: decode step failed: {error!r}")
                finally:
                    self._busy_since = None
                self._retire()

    def _wait_for_work(self) -> None:
        with self._work:
            if not self._waiting and not self._stopping:
                self._work.wait(IDLE_POLL_S)

    def _admit(self) -> None:
        """1. Move waiting sequences into free slots of the running batch (a request's n choices
        take n slots, all at once)."""
        while True:
            with self._work:
                if not self._waiting:
                    break
                head = self._waiting[0]
                if not head.stream.cancelled and len(self._running) + head.request.params.n > self._max_running:
                    break
                sequence = self._waiting.popleft()
                self._metrics.queue_depth.dec()
            if not sequence.stream.cancelled:
                self._start(sequence)
        self._metrics.running.set(len(self._running))

    def _start(self, sequence: _Sequence) -> None:
        """Tokenize and prefill one request; its first tokens come from the prefill's logits. With
        n > 1 the prefill's row is copied once per choice, so the prompt is run once."""
        started = time.perf_counter()
        self._metrics.queue_wait.observe(started - sequence.submitted_at)
        if not self._tokenize(sequence):
            return
        choices = [sequence]
        for index in range(1, sequence.request.params.n):
            choice = self._choice(sequence.request, sequence.stream, sequence.group, index)
            choice.prompt_ids = sequence.prompt_ids
            choice.constraint = sequence.constraint.fork() if sequence.constraint is not None else None
            choices.append(choice)
        try:
            state, logits = self._engine.prefill(sequence.prompt_ids)
            # Sampled here too: outside the boundary a failure killed the decode thread, and this
            # request (in neither the queue nor the batch) was never answered.
            picked = self._choose(choices, logits.expand(len(choices), -1).contiguous())
        except Exception as error:  # boundary: one bad prompt fails only its own request
            log.exception("%s: prefill failed", self._name)
            self._publish_error(sequence, f"{self._name}: prefill failed: {error!r}")
            return
        self._metrics.tokens_in.inc(sequence.prompt_tokens)
        going = [c for c, (token, logprob) in zip(choices, picked, strict=True) if not self._advance(c, token, logprob)]
        if going:
            forked = state if len(going) == 1 else self._engine.keep(state, [0] * len(going))
            assert forked is not None
            self._state = self._engine.join(self._state, forked)
            self._running.extend(going)
        self._metrics.batch_formation.observe(time.perf_counter() - started)

    def _choose(self, sequences: list[_Sequence], logits: torch.Tensor) -> list[tuple[int, TokenLogprob | None]]:
        """Penalize, mask to the grammar, sample, and look up log-probabilities for the rows that asked.
        Rows with none of these cost nothing extra: the logits are changed in place, row by row, and
        copied first only when some row also wants the model's unchanged log-probabilities."""
        params = [s.request.params for s in sequences]
        raw = logits
        penalized = any(p.penalized for p in params)
        constrained = [row for row, s in enumerate(sequences) if s.constraint is not None]
        wanted = [row for row, p in enumerate(params) if p.logprobs is not None]
        if penalized or constrained:
            logits = logits.float().clone() if wanted else logits.float()
            if penalized:
                logits = apply_penalties(logits, params, [s.counts for s in sequences])
            for row in constrained:
                constraint = sequences[row].constraint
                assert constraint is not None
                constraint.mask(logits[row])
        chosen = sample_next(logits, params, [s.generator for s in sequences])
        found: list[TokenLogprob | None] = [None] * len(sequences)
        if wanted:
            top_k = [params[row].logprobs or 0 for row in wanted]
            entries = token_logprobs(raw, wanted, top_k, [chosen[row] for row in wanted], self._engine.token_texts)
            for row, entry in zip(wanted, entries, strict=True):
                found[row] = entry
        return [(token, found[row]) for row, token in enumerate(chosen)]

    def _tokenize(self, sequence: _Sequence) -> bool:
        """Encode the prompt and check it fits the context; False (and a 400 sent) when it does not."""
        request = sequence.request
        try:
            if request.messages is not None:
                sequence.prompt_ids = self._engine.encode_chat(request.messages)
            else:
                sequence.prompt_ids = self._engine.encode_prompt(request.prompt or "")
        except Exception as error:  # boundary: e.g. a chat template that rejects the roles given
            self._publish_error(sequence, f"the prompt could not be encoded: {error}", param="messages")
            return False
        param = "messages" if request.messages is not None else "prompt"
        limit = self._engine.max_context_tokens
        if not sequence.prompt_ids:
            self._publish_error(sequence, "the prompt is empty", param=param)
            return False
        if len(sequence.prompt_ids) >= limit:
            message = f"the prompt is {len(sequence.prompt_ids)} tokens; this model's context is {limit} tokens"
            self._publish_error(sequence, message, param=param)
            return False
        max_tokens = request.params.max_tokens
        if max_tokens is not None and len(sequence.prompt_ids) + max_tokens > limit:
            message = (
                f"max_tokens is too large: the prompt is {len(sequence.prompt_ids)} tokens, this model's context "
                f"is {limit}, so at most {limit - len(sequence.prompt_ids)} tokens can be generated"
            )
            self._publish_error(sequence, message, param="max_tokens")
            return False
        if request.constraint is not None:
            try:
                sequence.constraint = self._engine.constrain(request.constraint.schema)
            except (ValueError, RuntimeError) as error:  # a schema the grammar compiler cannot use
                message = f"the JSON schema cannot be used: {error}"
                self._publish_error(sequence, message, param=request.constraint.param)
                return False
        return True

    def _drop_cancelled(self) -> None:
        """2. Sequences whose client went away leave before the next step."""
        if any(s.stream.cancelled for s in self._running):
            for sequence in self._running:
                if sequence.stream.cancelled and sequence.finish_reason is None:
                    sequence.finish_reason = "cancelled"
            self._retire()

    def _step(self) -> None:
        """3. One decode step for every running sequence, then sample and emit."""
        assert self._state is not None
        started = time.perf_counter()
        tokens = torch.tensor([s.last_token for s in self._running], dtype=torch.long)
        logits = self._engine.step(self._state, tokens)
        chosen = self._choose(self._running, logits)
        self._metrics.inference.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(self._running))
        for sequence, (token, logprob) in zip(self._running, chosen, strict=True):
            self._advance(sequence, token, logprob)

    def _retire(self) -> None:
        """4. Finished sequences leave the batch; the engine drops their rows."""
        keep = [row for row, s in enumerate(self._running) if s.finish_reason is None]
        if len(keep) == len(self._running):
            return
        self._running = [self._running[row] for row in keep]
        self._state = self._engine.keep(self._state, keep) if self._state is not None and keep else None
        self._metrics.running.set(len(self._running))

    def _advance(self, sequence: _Sequence, token: int, logprob: TokenLogprob | None = None) -> bool:
        """Apply one sampled token to a sequence and publish its new text; True when it finished."""
        params = sequence.request.params
        if token in self._engine.eos_token_ids and not params.ignore_eos:
            sequence.finish_reason = "stop"
        else:
            sequence.generated += 1
            sequence.last_token = token
            if sequence.counts is not None:
                sequence.counts[token] = sequence.counts.get(token, 0) + 1
            if logprob is not None:
                sequence.pending_logprobs.append(logprob)
            if sequence.constraint is not None and not sequence.constraint.accept(token):
                self._publish_error(sequence, f"{self._name}: the JSON grammar refused token {token}")
                return True
            self._metrics.tokens_out.inc()
            sequence.text += sequence.detokenizer.push(token)
            if params.stop and self._truncate_at_stop(sequence):
                sequence.finish_reason = "stop"
            elif sequence.constraint is not None and sequence.constraint.complete:
                sequence.finish_reason = "stop"  # the JSON is whole: only EOS could follow
            elif (params.max_tokens is not None and sequence.generated >= params.max_tokens) or (
                sequence.prompt_tokens + sequence.generated >= self._engine.max_context_tokens
            ):
                sequence.finish_reason = "length"
        self._publish_text(sequence)
        return sequence.finish_reason is not None

    @staticmethod
    def _truncate_at_stop(sequence: _Sequence) -> bool:
        # Only the unemitted tail can hold a new stop string (plus an overlap of the longest stop).
        longest = max(len(stop) for stop in sequence.request.params.stop)
        search_from = max(0, sequence.emitted_chars - longest)
        hits = [i for stop in sequence.request.params.stop if (i := sequence.text.find(stop, search_from)) >= 0]
        if not hits:
            return False
        sequence.text = sequence.text[: min(hits)]
        return True

    def _publish_text(self, sequence: _Sequence) -> None:
        # While running, hold back a tail that could still become a stop string.
        holdback = 0
        if sequence.finish_reason is None and sequence.request.params.stop:
            holdback = max(len(stop) for stop in sequence.request.params.stop) - 1
        end = max(sequence.emitted_chars, len(sequence.text) - holdback)
        delta = sequence.text[sequence.emitted_chars : end]
        if not delta and sequence.finish_reason is None:
            return  # any log-probabilities wait for the event that carries their text
        sequence.emitted_chars = end
        if sequence.finish_reason == "cancelled":
            return
        if sequence.finish_reason is not None:
            sequence.group.open -= 1
        logprobs, sequence.pending_logprobs = tuple(sequence.pending_logprobs), []
        sequence.stream.publish(
            GenerationEvent(
                text=delta,
                prompt_tokens=sequence.prompt_tokens,
                completion_tokens=sequence.generated,
                finish_reason=sequence.finish_reason,
                index=sequence.index,
                open_choices=sequence.group.open,
                logprobs=logprobs,
            )
        )

    def _publish_error(self, sequence: _Sequence, message: str, *, param: str | None = None) -> None:
        sequence.finish_reason = "error"
        event = GenerationEvent("", sequence.prompt_tokens, sequence.generated, error=message, error_param=param)
        sequence.stream.publish(event)

    def _fail_running(self, message: str) -> None:
        for sequence in self._running:
            self._publish_error(sequence, message)
        self._running = []
        self._state = None
        self._metrics.running.set(0)
