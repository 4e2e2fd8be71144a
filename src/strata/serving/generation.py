"""Typed messages between the gateway and a text-generation replica."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from strata.errors import InvalidRequest, ModelFailed
from strata.serving.sampling import SamplingParams

FinishReason = str  # "stop" (EOS or a stop string) or "length" (max_tokens or the context is full)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's text and log-probability, and the most likely alternatives at its step."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class JsonConstraint:
    """Structured output: the generated text must be JSON valid against ``schema``."""

    schema: str  # the JSON Schema as JSON text; '{"type": "object"}' for OpenAI's json_object
    param: str = "response_format"  # the request field to name when the schema cannot be used


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Either a chat (``messages``) or a raw ``prompt``; the replica tokenizes it, so the gateway
    never needs the model's tokenizer and the replica may live in another process."""

    params: SamplingParams
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    constraint: JsonConstraint | None = None  # grammar-constrained decoding (response_format)


@dataclass(frozen=True, slots=True)
class GenerationEvent:
    """New text for one sequence. The last event has ``finish_reason`` set; ``error`` ends it with a failure."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None
    error: str | None = None
    error_param: str | None = None  # set when the request itself was invalid (e.g. too long): a 400
    index: int = 0  # which choice (n > 1): the events of all choices share one stream
    open_choices: int = 0  # choices still running after this event; the stream ends at a finish with none
    logprobs: tuple[TokenLogprob, ...] = ()  # the tokens decoded since the choice's last event, when asked

    @property
    def ends_stream(self) -> bool:
        return self.finish_reason is not None and self.open_choices == 0


@dataclass(slots=True)
class Choice:
    """One choice's whole generation, gathered from its events."""

    index: int
    text: str = ""
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, event: GenerationEvent) -> None:
        self.text += event.text
        self.logprobs.extend(event.logprobs)
        self.completion_tokens = event.completion_tokens
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason


class Choices:
    """Every choice of one generation, by index, and the prompt's token count (shared by all)."""

    def __init__(self) -> None:
        self.by_index: dict[int, Choice] = {}
        self.prompt_tokens = 0

    def add(self, event: GenerationEvent) -> None:
        choice = self.by_index.get(event.index)
        if choice is None:
            choice = self.by_index[event.index] = Choice(event.index)
        choice.add(event)
        self.prompt_tokens = event.prompt_tokens

    def ordered(self) -> list[Choice]:
        return [self.by_index[index] for index in sorted(self.by_index)]

    @property
    def completion_tokens(self) -> int:
        """Summed over choices, as OpenAI bills n > 1."""
        return sum(choice.completion_tokens for choice in self.by_index.values())


class GenerationStream:
    """The caller's end of one sequence: its events, and a way to leave the batch early.

    ``close`` is idempotent and always safe: the scheduler drops a closed sequence before its
    next decode step, which frees its slot for a waiting request, and the close callbacks (the
    router's outstanding count) run exactly once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._on_close: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        """Leave the batch (if still running) and release what the caller holds. Event-loop side."""
        self._cancelled.set()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def publish(self, event: GenerationEvent) -> None:
        """Called from the scheduler thread; hands the event to the caller's event loop."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """Yield events until the sequence finishes; close it however the consumer stops."""
        try:
            while True:
                event = await self._events.get()
                if event.error is not None:
                    if event.error_param is not None:
                        raise InvalidRequest(event.error, param=event.error_param)
                    raise ModelFailed(event.error)
                yield event
                if event.ends_stream:
                    return
        finally:
            self.close()
