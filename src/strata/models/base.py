"""The small interfaces every model backend implements.

Two shapes cover the models Strata serves:

* :class:`BatchModel` - one call maps a batch of inputs to a batch of outputs. The dynamic
  batcher drives it (embeddings, classic models, any Python/torch model).
* :class:`DecodeEngine` - a causal LM driven one decode step at a time, so the continuous
  batcher can add and remove sequences between steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch


@runtime_checkable
class BatchModel(Protocol):
    """A model served by dynamic batching: ``predict_batch`` gets up to max_batch_size inputs."""

    def predict_batch(self, inputs: Sequence[Any]) -> Sequence[Any]:
        """Return one output per input, in order. Raising fails every request in the batch."""
        ...

    def warmup(self) -> None:
        """Run once after loading, before the replica takes traffic (compile, allocate, cache)."""
        ...


@dataclass(frozen=True, slots=True)
class Embedding:
    """One input's embedding and the number of tokens it used (for usage accounting)."""

    vector: Any  # numpy float32 array of shape (dimensions,)
    tokens: int


class DecodeState(Protocol):
    """Engine-owned state of the running batch (e.g. a padded KV cache); opaque to the scheduler."""

    @property
    def rows(self) -> int: ...


StateT = TypeVar("StateT", bound=DecodeState)


class DecodeEngine(Protocol[StateT]):
    """A causal LM as the continuous batcher sees it: prefill, join, step, leave. ``StateT`` is the
    engine's own record of the running batch; the batcher only hands it back."""

    eos_token_ids: frozenset[int]
    max_context_tokens: int

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat rendered with the model's chat template, ready for the reply."""
        ...

    def encode_prompt(self, prompt: str) -> list[int]: ...

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[StateT, torch.Tensor]:
        """Run the prompt; return its state (one row) and the logits for the next token, shape (1, vocab)."""
        ...

    def join(self, running: StateT | None, new: StateT) -> StateT:
        """Append ``new``'s rows after ``running``'s; row order is kept."""
        ...

    def step(self, state: StateT, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (shape (rows,)); return next-token logits, shape (rows, vocab)."""
        ...

    def keep(self, state: StateT, rows: Sequence[int]) -> StateT | None:
        """Keep only ``rows`` (in that order); None when no row is left. A row may be named more
        than once: that copies it (the n choices of one request fork a single prefill)."""
        ...

    def token_texts(self, token_ids: Sequence[int]) -> list[str]:
        """The text each token decodes to on its own (log-probabilities name tokens this way)."""
        ...

    def constrain(self, json_schema: str) -> TokenConstraint:
        """A fresh grammar state that lets a sequence generate only JSON valid against ``json_schema``
        (JSON text); ValueError saying why when the schema cannot be used."""
        ...

    def detokenizer(self) -> Detokenizer:
        """A fresh incremental detokenizer for one sequence."""
        ...

    def warmup(self) -> None: ...


class TokenConstraint(Protocol):
    """One sequence's grammar: masks the logits to the tokens allowed next, and follows the choices."""

    def fork(self) -> TokenConstraint:
        """An independent copy in the same state."""
        ...

    def mask(self, logits: torch.Tensor) -> None:
        """Set the logits of every forbidden token (one row, shape (vocab,)) to -inf, in place."""
        ...

    def accept(self, token: int) -> bool:
        """Advance past a chosen token; False if the grammar refuses it (the mask was not applied)."""
        ...

    @property
    def complete(self) -> bool:
        """Nothing but EOS may follow: the sequence is done."""
        ...


class Detokenizer(Protocol):
    def push(self, token_id: int) -> str:
        """Add one generated token; return the text it completes (may be empty mid-character)."""
        ...
