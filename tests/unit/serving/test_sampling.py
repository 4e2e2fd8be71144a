"""Penalties and log-probabilities on hand-made logits."""

import math

import torch

from strata.serving.logprobs import token_logprobs
from strata.serving.sampling import SamplingParams, apply_penalties, choice_seed


def test_penalties_follow_openais_formula_and_skip_other_rows() -> None:
    logits = torch.zeros(3, 5)
    params = [
        SamplingParams(frequency_penalty=0.5, presence_penalty=1.0),
        SamplingParams(),
        SamplingParams(frequency_penalty=-1.0),
    ]
    out = apply_penalties(logits, params, [{1: 3, 4: 1}, {1: 9}, {2: 2}])
    assert out[0].tolist() == [0.0, -(0.5 * 3 + 1.0), 0.0, 0.0, -(0.5 + 1.0)]
    assert out[1].tolist() == [0.0] * 5  # no penalty asked: untouched whatever it generated
    assert out[2].tolist() == [0.0, 0.0, 2.0, 0.0, 0.0]  # a negative penalty favours repeats


def test_token_logprobs_are_a_log_softmax_of_the_raw_logits() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
    entries = token_logprobs(logits, [0, 1], [2, 0], [2, 3], lambda ids: [f"t{i}" for i in ids])
    expected = torch.log_softmax(logits, dim=-1)
    assert entries[0].token == "t2"
    assert math.isclose(entries[0].logprob, float(expected[0, 2]), rel_tol=1e-6)
    assert [t for t, _ in entries[0].top] == ["t1", "t2"]
    assert entries[1].top == ()


def test_choice_seeds_differ_and_choice_zero_keeps_the_seed() -> None:
    seeds = [choice_seed(2**63 - 1, i) for i in range(16)] + [choice_seed(-(2**63), i) for i in range(16)]
    assert len(set(seeds)) == 32
    assert all(-(2**63) <= s < 2**63 for s in seeds)
    assert choice_seed(42, 0) == 42
