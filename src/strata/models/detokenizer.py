"""Incremental detokenization: turn a growing list of token ids into text deltas.

Decoding only a short window (vLLM's prefix/read offsets) keeps each step O(1) and holds back
bytes that do not yet form a whole character.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        decode = self._tokenizer.decode
        before: str = decode(self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        after: str = decode(self._ids[self._prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith(REPLACEMENT_CHAR):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return after[len(before) :]
        return ""
