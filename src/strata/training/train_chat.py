"""Train ``strata-chat-tiny``, the small LLaMA-architecture chat model Strata ships.

Everything is built from scratch and offline: a byte-level BPE tokenizer is trained on
a synthetic corpus (:mod:`strata.training.chat_corpus`), then a few-million-parameter
``LlamaForCausalLM`` is trained on it for a few minutes of CPU time and saved in the
Hugging Face format, so it loads with ``AutoModelForCausalLM``/``AutoTokenizer`` like
any other model.

Retrain the shipped model with::

    python -m strata.training.train_chat --output src/strata/assets/strata-chat-tiny
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from strata.training.chat_corpus import generate_conversations

PAD = "<|pad|>"
BOS = "<|bos|>"
END = "<|end|>"
# Read-only mappings: module-level constants must not become shared mutable state.
ROLE_TOKENS: Mapping[str, str] = MappingProxyType(
    {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
)
SPECIAL_TOKENS = (PAD, BOS, END, *ROLE_TOKENS.values())

# Renders each message as "<|role|>\n{content}<|end|>\n". The leading BOS matches how
# the model was trained; callers tokenize the rendered text with add_special_tokens=False.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "assets" / "strata-chat-tiny"
DEFAULT_STEPS = 1000
DEFAULT_BATCH_SIZE = 32
VOCAB_SIZE = 2048
MAX_SEQ_LEN = 256
IGNORE_INDEX = -100  # labels with this value are skipped by the cross-entropy loss

# A few million parameters: big enough to memorise the corpus facts, small enough
# to train in minutes on two CPU cores and ship inside the wheel.
MODEL_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
    }
)


@dataclass(frozen=True)
class TrainReport:
    """What a training run produced, for logs and tests."""

    params: int
    final_loss: float
    seconds: float
    steps: int


@dataclass(frozen=True)
class Example:
    """One tokenized conversation; ``labels`` masks everything but assistant replies."""

    input_ids: list[int]
    labels: list[int]


def render_conversation(conversation: Sequence[dict[str, str]]) -> str:
    """The text the chat template produces, used to train the tokenizer on the real format."""
    body = "".join(f"{ROLE_TOKENS[m['role']]}\n{m['content']}{END}\n" for m in conversation)
    return BOS + body


def build_tokenizer(
    conversations: Sequence[Sequence[dict[str, str]]], vocab_size: int = VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the corpus and wrap it for ``transformers``."""
    tokenizer = Tokenizer(models.BPE())
    # Byte-level: any input text is encodable, so user prompts never hit an <unk>.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((render_conversation(c) for c in conversations), trainer=trainer)
    # Plain prompts (completions API) get the same BOS the chat format starts with.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A $B",
        special_tokens=[(BOS, tokenizer.token_to_id(BOS))],
    )
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS.values()),
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_DEFAULTS["max_position_embeddings"],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def encode_conversation(
    tokenizer: PreTrainedTokenizerFast,
    conversation: Sequence[dict[str, str]],
    max_len: int = MAX_SEQ_LEN,
) -> Example:
    """Tokenize message by message so the assistant spans are known exactly.

    Special tokens split the text before BPE runs, so encoding the pieces gives the same
    ids as encoding the whole rendered conversation.
    """
    bos, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    newline = tokenizer.encode("\n", add_special_tokens=False)
    input_ids: list[int] = [bos]
    labels: list[int] = [IGNORE_INDEX]
    for message in conversation:
        prompt = [tokenizer.convert_tokens_to_ids(ROLE_TOKENS[message["role"]]), *newline]
        content = [*tokenizer.encode(message["content"], add_special_tokens=False), end]
        input_ids += prompt + content + newline
        # Only the assistant's reply and its <|end|> are learned: the model must not
        # imitate users, but it must learn when to stop.
        learned = content if message["role"] == "assistant" else [IGNORE_INDEX] * len(content)
        labels += [IGNORE_INDEX] * len(prompt) + learned + [IGNORE_INDEX] * len(newline)
    return Example(input_ids=input_ids[:max_len], labels=labels[:max_len])


def build_model(tokenizer: PreTrainedTokenizerFast, overrides: dict[str, Any] | None = None) -> LlamaForCausalLM:
    """A freshly initialised LLaMA sized by ``MODEL_DEFAULTS`` plus ``overrides``."""
    settings = {**MODEL_DEFAULTS, **(overrides or {})}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **settings,
    )
    return LlamaForCausalLM(config)


def _batches(
    examples: Sequence[Example], batch_size: int, pad_id: int, rng: random.Random
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield right-padded (input_ids, labels) batches forever.

    Examples are sorted by length inside pools of a few batches so each batch pads
    little (CPU time is the budget), while the pool shuffle keeps batches varied.
    """
    pool_size = batch_size * 16
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=lambda i: len(examples[i].input_ids))
            chunks = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
            rng.shuffle(chunks)
            for chunk in chunks:
                yield _collate([examples[i] for i in chunk], pad_id)


def _collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
    return input_ids, labels


def _warmup_cosine(warmup: int, total: int, floor: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warmup, then cosine decay to ``floor`` of the peak."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True  # training ran without a cache; inference wants one
    # generate() stops on eos_token_id, which must be <|end|>, the end-of-message token.
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def train_chat_model(
    output_dir: Path,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = 2e-3,
    num_conversations: int | None = None,
    model_overrides: dict[str, Any] | None = None,
    num_threads: int = 2,
) -> TrainReport:
    """Train the tokenizer and model from scratch and save both to ``output_dir``."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    started = time.perf_counter()
    torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)

    # Fresh synthetic data is free, so by default every step sees new conversations.
    count = num_conversations if num_conversations is not None else max(2000, steps * batch_size)
    conversations = generate_conversations(count, seed=seed)
    tokenizer = build_tokenizer(conversations)
    examples = [encode_conversation(tokenizer, c) for c in conversations]
    model = build_model(tokenizer, model_overrides)
    params = sum(p.numel() for p in model.parameters())

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(max(1, steps // 20), steps))
    task = progress.add_task("training", total=steps) if progress is not None else None
    batches = _batches(examples, batch_size, tokenizer.pad_token_id, rng)
    recent: list[float] = []

    model.train()
    for _ in range(steps):
        input_ids, labels = next(batches)
        # No attention mask: padding is on the right, so causal attention never lets a
        # real token see it, and padded positions carry no labels.
        loss = model(input_ids=input_ids, labels=labels, use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        recent = [*recent[-19:], float(loss.item())]
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"training  loss {recent[-1]:.3f}")

    _save(model, tokenizer, output_dir)
    # The mean of the last steps is a steadier summary than one noisy batch.
    final_loss = sum(recent) / len(recent)
    return TrainReport(params=params, final_loss=final_loss, seconds=time.perf_counter() - started, steps=steps)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train Strata's tiny demo chat model.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder to save the model into")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="conversations per step")
    parser.add_argument("--seed", type=int, default=0, help="seed for the corpus, init and batching")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        report = train_chat_model(
            args.output, steps=args.steps, seed=args.seed, progress=progress, batch_size=args.batch_size
        )
    print(
        f"saved {args.output}: {report.params:,} parameters, {report.steps} steps, "
        f"final loss {report.final_loss:.4f}, {report.seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
