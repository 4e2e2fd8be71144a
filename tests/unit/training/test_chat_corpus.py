"""The synthetic corpus is the only training data of the shipped model: it must be
deterministic (so a retrain reproduces the model) and well formed (so the chat template fits)."""

import pytest

from strata.training.chat_corpus import generate_conversations


def test_same_seed_gives_the_same_corpus_and_another_seed_does_not() -> None:
    assert generate_conversations(200, seed=7) == generate_conversations(200, seed=7)
    assert generate_conversations(200, seed=7) != generate_conversations(200, seed=8)


def test_conversations_alternate_user_and_assistant_after_an_optional_system_prompt() -> None:
    for conversation in generate_conversations(500, seed=1):
        roles = [m["role"] for m in conversation]
        if roles[0] == "system":
            roles = roles[1:]
        assert roles, conversation
        assert roles == ["user", "assistant"] * (len(roles) // 2), conversation
        assert all(m["content"].strip() for m in conversation), conversation


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        generate_conversations(-1)
