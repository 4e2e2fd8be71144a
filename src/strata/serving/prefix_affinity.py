"""Prefix affinity for LLM deployments: send a prompt to the replica that served its prefix last, so an
engine with a prefix cache (vLLM, llama.cpp) skips that part of the prefill.

The gateway has no tokenizer, so prompts are cut into blocks of characters. Block i's hash chains the
hashes of blocks 0..i, so one hash stands for the whole prefix up to it (llm-d's prefix-cache scorer
does the same with token blocks). The index maps block hashes to the replicas that were sent them,
least recently used first out; it is the router's guess of each replica's cache, kept on the caller's
side like its outstanding counts, at a cost of a few microseconds per request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from strata.serving.generation import GenerationRequest

MAX_BLOCKS = 64  # hash at most this many blocks of a prompt: the cost stays bounded however long it is


def prefix_blocks(request: GenerationRequest, block_chars: int) -> tuple[int, ...]:
    """Chained hashes of the prompt's full blocks (a partial last block is not cached by engines either)."""
    if request.messages is not None:
        text = "".join(f"\x1e{m.get('role', '')}\x1f{m.get('content', '')}" for m in request.messages)
    else:
        text = request.prompt or ""
    blocks = []
    running = 0
    for start in range(0, min(len(text) // block_chars, MAX_BLOCKS) * block_chars, block_chars):
        running = hash((running, text[start : start + block_chars]))
        blocks.append(running)
    return tuple(blocks)


class PrefixIndex:
    """Which replicas (by key) were sent which prefix blocks, bounded to ``capacity`` blocks (LRU)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._holders: OrderedDict[int, set[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._holders)

    def matched(self, blocks: Sequence[int]) -> dict[int, int]:
        """For each replica key, how many leading blocks of ``blocks`` it was sent."""
        matched: dict[int, int] = {}
        for depth, block in enumerate(blocks, start=1):
            holders = self._holders.get(block)
            if not holders:
                break  # chained hashes: no replica can hold a longer prefix than this
            for key in holders:
                matched[key] = depth
        return matched

    def record(self, blocks: Sequence[int], key: int) -> None:
        """``key`` was sent these blocks: it holds them now (most recently used). Recorded deepest first, so
        a prompt's leading blocks are the freshest and eviction shortens prefixes from their end."""
        for block in reversed(blocks):
            holders = self._holders.get(block)
            if holders is None:
                self._holders[block] = {key}
            else:
                holders.add(key)
                self._holders.move_to_end(block)
        while len(self._holders) > self._capacity:
            self._holders.popitem(last=False)
