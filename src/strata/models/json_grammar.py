"""Structured outputs: text that is JSON matching a schema, guaranteed by grammar-constrained decoding.

At every step a constrained row's logits are masked to the tokens the schema's grammar allows next
(llguidance computes the mask from the grammar and the tokenizer; EOS is allowed only once the JSON
is complete), so whatever the model or sampling settings, the text parses and validates. Only
constrained rows pay for a mask; the others in the same batch are untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import llguidance
import llguidance.hf
import numpy as np
import torch

if TYPE_CHECKING:  # a TypedDict that exists only in llguidance's type stubs
    from llguidance._lib import JsonCompileOptions

# Compact JSON: with flexible whitespace a small model can emit spaces or newlines without end, and
# never finish the object inside max_tokens.
JSON_OPTIONS: JsonCompileOptions = {"whitespace_flexible": False}


class JsonGrammar:
    """One sequence's grammar state: which tokens may come next, advanced by each chosen token."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size

    def fork(self) -> JsonGrammar:
        """An independent copy in the same state (for the other choices of an n > 1 request)."""
        return JsonGrammar(self._matcher.deep_copy(), self._vocab_size)

    def mask(self, logits: torch.Tensor) -> None:
        """Set every token the grammar forbids next to -inf, in place, in one row of logits."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: logits.shape[-1]]
        forbidden = torch.from_numpy(allowed == 0)
        if forbidden.shape[0] < logits.shape[-1]:  # the model's padded vocabulary beyond the tokenizer's
            logits[forbidden.shape[0] :] = float("-inf")
        logits[: forbidden.shape[0]].masked_fill_(forbidden, float("-inf"))

    def accept(self, token: int) -> bool:
        return bool(self._matcher.consume_token(token))

    @property
    def complete(self) -> bool:
        """The JSON is finished: nothing but EOS may follow."""
        return bool(self._matcher.is_stopped())


class GrammarCompiler:
    """Turns a request's schema into a JsonGrammar for one model's tokenizer. The tokenizer's
    conversion takes up to a second for a large vocabulary, so it runs once, at the first use."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int, eos_token_ids: Iterable[int]) -> None:
        self._hf_tokenizer = hf_tokenizer
        self._vocab_size = vocab_size
        self._eos = sorted(eos_token_ids)
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def _llg_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = llguidance.hf.from_tokenizer(
                    self._hf_tokenizer, n_vocab=self._vocab_size, eos_token=self._eos
                )
            return self._tokenizer

    def compile(self, schema: str) -> JsonGrammar:
        """The grammar of a JSON Schema (JSON text); ValueError saying why when it cannot be used."""
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.loads(schema), JSON_OPTIONS)
        tokenizer = self._llg_tokenizer()
        problem = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
        if problem:
            raise ValueError(problem)
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return JsonGrammar(matcher, self._vocab_size)
