"""Text generation with any transformers causal LM in a local folder.

The model is driven one decode step at a time by the continuous batcher. The running batch
shares one KV cache, left-padded so every row ends at the same column: a new sequence is
prefilled on its own and then padded into the batch; a finished one is dropped by row, and
columns that became padding in every row are trimmed away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from strata.errors import InvalidRequest
from strata.models.detokenizer import IncrementalDetokenizer
from strata.models.json_grammar import GrammarCompiler, JsonGrammar

FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
"""Used only for models whose tokenizer has no chat template of its own."""


@dataclass(slots=True)
class KVBatch:
    """The running batch: one DynamicCache and a mask whose zeros mark left padding."""

    cache: DynamicCache
    mask: torch.Tensor  # (rows, columns) of 0/1, long
    positions: torch.Tensor  # (rows,) position id of each row's next token

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])


def _layers(cache: DynamicCache) -> list[DynamicLayer]:
    # Plain causal LMs (LLaMA, Mistral, Qwen, GPT-2, ...) fill a DynamicCache with DynamicLayers.
    return cast(list[DynamicLayer], cache.layers)


def _kv(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    keys, values = layer.keys, layer.values
    if keys is None or values is None:
        raise RuntimeError("a cache layer was used before any prefill filled it")
    return keys, values


def _left_pad(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    missing = columns - tensor.shape[dim]
    if missing == 0:
        return tensor
    # F.pad lists (left, right) pairs from the last dimension backwards.
    pad = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [missing, 0]
    return F.pad(tensor, pad)


class HFCausalLM:
    """A transformers causal LM plus its tokenizer, implementing :class:`DecodeEngine`."""

    def __init__(self, folder: Path, *, device: str = "cpu", dtype: str | None = None) -> None:
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        torch_dtype = getattr(torch, dtype) if dtype else None
        model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch_dtype)
        self.model: Any = model.to(self.device).eval()
        self.eos_token_ids = self._eos_ids()
        self.max_context_tokens = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.chat_template = self.tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE
        vocab_size = int(self.model.get_output_embeddings().weight.shape[0])  # the logits' width
        self._grammars = GrammarCompiler(self.tokenizer, vocab_size, self.eos_token_ids)

    @classmethod
    def from_options(cls, folder: Path, device: str, options: dict[str, Any]) -> HFCausalLM:
        allowed = {"dtype"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InvalidRequest(f"options: unknown option(s) {unknown} for hf-causal-lm (allowed: {sorted(allowed)})")
        return cls(folder, device=device, **options)

    def _eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in configured if isinstance(configured, list) else [configured]:
            if value is not None:
                ids.add(int(value))
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return frozenset(ids)

    # 1. Text in: prompts and chats become token ids.

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            list(messages), chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        # The template already wrote any BOS it wants; adding special tokens again would double it.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def detokenizer(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.tokenizer)

    def token_texts(self, token_ids: Sequence[int]) -> list[str]:
        texts: list[str] = self.tokenizer.batch_decode([[token] for token in token_ids])
        return texts

    def constrain(self, json_schema: str) -> JsonGrammar:
        return self._grammars.compile(json_schema)

    # 2. The decode-engine steps the continuous batcher calls, always from its own thread.

    @torch.inference_mode()
    def prefill(self, prompt_ids: Sequence[int]) -> tuple[KVBatch, torch.Tensor]:
        input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
        cache = DynamicCache()
        out = self.model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
        mask = torch.ones_like(input_ids)
        positions = torch.tensor([len(prompt_ids)], dtype=torch.long, device=self.device)
        return KVBatch(cache=out.cache, mask=mask, positions=positions), out.logits[:, -1, :]

    def join(self, running: KVBatch | None, new: KVBatch) -> KVBatch:
        if running is None:
            return new
        columns = max(running.mask.shape[1], new.mask.shape[1])
        for old_layer, new_layer in zip(_layers(running.cache), _layers(new.cache), strict=True):
            (old_keys, old_values), (new_keys, new_values) = _kv(old_layer), _kv(new_layer)
            old_layer.keys = torch.cat([_left_pad(old_keys, columns, 2), _left_pad(new_keys, columns, 2)])
            old_layer.values = torch.cat([_left_pad(old_values, columns, 2), _left_pad(new_values, columns, 2)])
        running.mask = torch.cat([_left_pad(running.mask, columns, 1), _left_pad(new.mask, columns, 1)])
        running.positions = torch.cat([running.positions, new.positions])
        return running

    @torch.inference_mode()
    def step(self, state: KVBatch, tokens: torch.Tensor) -> torch.Tensor:
        ones = torch.ones((state.rows, 1), dtype=state.mask.dtype, device=self.device)
        state.mask = torch.cat([state.mask, ones], dim=1)
        out = self.model(
            input_ids=tokens.view(-1, 1).to(self.device),
            attention_mask=state.mask,
            position_ids=state.positions.view(-1, 1),
            cache=state.cache,
            use_cache=True,
        )
        state.cache = out.cache
        state.positions = state.positions + 1
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def keep(self, state: KVBatch, rows: Sequence[int]) -> KVBatch | None:
        if not rows:
            return None
        if len(rows) == state.rows:
            return state
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        mask = state.mask.index_select(0, index)
        # Columns that are padding in every surviving row carry nothing: trim them from the left.
        first_used = int(mask.any(dim=0).nonzero()[0, 0])
        for layer in _layers(state.cache):
            keys, values = _kv(layer)
            layer.keys = keys.index_select(0, index)[:, :, first_used:, :]
            layer.values = values.index_select(0, index)[:, :, first_used:, :]
        state.mask = mask[:, first_used:]
        state.positions = state.positions.index_select(0, index)
        return state

    def warmup(self) -> None:
        prompt = self.encode_chat([{"role": "user", "content": "Hello!"}])
        state, logits = self.prefill(prompt)
        first = self.prefill(prompt[: max(1, len(prompt) // 2)])[0]
        state = self.join(state, first)
        next_tokens = logits.argmax(dim=-1).repeat(state.rows)
        for _ in range(3):
            next_tokens = self.step(state, next_tokens).argmax(dim=-1)
        self.constrain('{"type": "object"}')  # converts the tokenizer for grammars now, not at a first request
