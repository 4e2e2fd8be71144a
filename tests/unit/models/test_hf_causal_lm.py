"""The decode engine's batch bookkeeping must not change what the model computes: sequences
joining and leaving a shared, left-padded KV cache decode exactly as they would alone."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from strata.models.hf_causal_lm import HFCausalLM


@pytest.fixture(scope="module")
def engine() -> HFCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
    )
    # Wrap a randomly initialised model: only the engine's tensor bookkeeping is under test here.
    lm = HFCausalLM.__new__(HFCausalLM)
    lm.model = LlamaForCausalLM(config).eval()
    lm.device = torch.device("cpu")
    return lm


def _reference(engine: HFCausalLM, prompt: list[int], steps: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = engine.model.generate(ids, max_new_tokens=steps, do_sample=False, eos_token_id=None, pad_token_id=0)
    return [int(t) for t in out[0, len(prompt) :]]


def test_staggered_joins_and_leaves_match_generate(engine: HFCausalLM) -> None:
    prompts = [[5, 6, 7, 8, 9, 10, 11], [20, 21], [30, 31, 32, 33], [40] * 12, [7]]
    lengths = [10, 4, 9, 6, 8]
    arrivals = {0: [0, 1], 2: [2], 3: [3], 5: [4]}  # step -> prompts joining before it
    outputs: dict[int, list[int]] = {}
    rows: list[int] = []
    state = None
    for step in range(40):
        for index in arrivals.get(step, []):
            new, logits = engine.prefill(prompts[index])
            state = engine.join(state, new)
            rows.append(index)
            outputs[index] = [int(logits.argmax())]
        if not rows:
            break
        assert state is not None
        logits = engine.step(state, torch.tensor([outputs[i][-1] for i in rows]))
        for row, index in enumerate(rows):
            outputs[index].append(int(logits[row].argmax()))
        keep = [row for row, index in enumerate(rows) if len(outputs[index]) < lengths[index]]
        rows = [rows[row] for row in keep]
        state = engine.keep(state, keep)
    for index, prompt in enumerate(prompts):
        assert outputs[index] == _reference(engine, prompt, lengths[index]), f"prompt {index}"


def test_keep_trims_columns_that_became_padding(engine: HFCausalLM) -> None:
    long, _ = engine.prefill(list(range(1, 30)))
    short, _ = engine.prefill([1, 2])
    state = engine.join(long, short)
    assert state.mask.shape == (2, 29)
    kept = engine.keep(state, [1])
    assert kept is not None
    assert kept.mask.shape == (1, 2)
    assert kept.cache.layers[0].keys.shape[2] == 2
    assert engine.keep(kept, []) is None
