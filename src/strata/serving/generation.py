"""Typed messages between the gateway and a text-generation replica."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from strata.errors import InvalidRequest, ModelFailed
from strata.serving.sampling import SamplingParams

FinishReason = str  # "stop" (EOS or a stop string) or "length" (max_tokens or the context is full)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Either a chat (``messages``) or a raw ``prompt``; the replica tokenizes it, so the gateway
    never needs the model's tokenizer and the replica may live in another process."""

    params: SamplingParams
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationEvent:
    """New text for one sequence. The last event has ``finish_reason`` set; ``error`` ends it with a failure."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None
    error: str | None = None
    error_param: str | None = None  # set when the request itself was invalid (e.g. too long): a 400


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
                if event.finish_reason is not None:
                    return
        finally:
            self.close()
