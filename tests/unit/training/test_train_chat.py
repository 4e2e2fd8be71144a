"""Training: a short run on a tiny configuration must learn (loss falls) and save a folder
that loads through exactly the path a user's checkpoint takes."""

from pathlib import Path

import pytest

from strata.models.hf_causal_lm import HFCausalLM
from strata.training.chat_corpus import generate_conversations
from strata.training.train_chat import (
    IGNORE_INDEX,
    build_tokenizer,
    encode_conversation,
    render_conversation,
    train_chat_model,
)

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}


def test_encoding_matches_the_chat_template_and_learns_only_assistant_replies() -> None:
    conversations = generate_conversations(300, seed=3)
    tokenizer = build_tokenizer(conversations, vocab_size=600)
    conversation = next(c for c in conversations if len(c) >= 4)
    example = encode_conversation(tokenizer, conversation, max_len=10_000)
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert rendered == render_conversation(conversation)
    assert example.input_ids == tokenizer.encode(rendered, add_special_tokens=False)
    learned = tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    )
    replies = "".join(m["content"] + tokenizer.eos_token for m in conversation if m["role"] == "assistant")
    assert learned == replies


def test_a_short_run_lowers_the_loss_and_saves_a_servable_model(tmp_path: Path) -> None:
    first = train_chat_model(tmp_path / "one-step", steps=1, num_conversations=400, model_overrides=TINY)
    report = train_chat_model(
        tmp_path / "model", steps=40, batch_size=16, num_conversations=400, model_overrides=TINY, learning_rate=5e-3
    )
    assert report.steps == 40
    assert report.final_loss < first.final_loss * 0.8, (first.final_loss, report.final_loss)

    engine = HFCausalLM(tmp_path / "model", device="cpu")
    end = engine.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in engine.eos_token_ids  # a reply stops at the end-of-message token
    prompt = engine.encode_chat([{"role": "user", "content": "Hi"}])
    assert prompt[0] == engine.tokenizer.bos_token_id
    assert engine.tokenizer.decode(prompt).endswith("<|assistant|>\n")


def test_zero_steps_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        train_chat_model(tmp_path, steps=0)
