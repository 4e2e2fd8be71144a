"""Deterministic synthetic chat corpus for Strata's tiny demo chat model.

The corpus is deliberately narrow: a model with a few million parameters trained
for a few minutes on CPU can only learn a handful of patterns, so every topic uses
short, regular answers that are easy to fit yet still read like an assistant.
All randomness flows through an explicit ``random.Random`` so the same
``(n, seed)`` always yields the same conversations.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from strata.training.chat_facts import (
    CAPITALS,
    COLORS,
    DAYS,
    JOKES,
    MONTHS,
    NUMBER_WORDS,
    SPELLING_WORDS,
    STRATA_DESCRIPTION,
    SYSTEM_PROMPTS,
    UNKNOWN_ANSWER,
    UNKNOWN_BOOKS,
    UNKNOWN_FAVORITES,
    UNKNOWN_PEOPLE,
    UNKNOWN_PLACES,
    UNKNOWN_QUESTIONS,
    UNKNOWN_TASKS,
    UNKNOWN_TOPICS,
)

Message = dict[str, str]
Conversation = list[Message]
Turn = tuple[str, str]
"""A (user question, assistant answer) pair."""


def _greeting(rng: random.Random) -> Turn:
    """Small talk: the most common first message a demo model receives."""
    kind = rng.randrange(6)
    if kind == 0:
        user = rng.choice(("Hi", "Hello", "Hey", "Hi there", "Hello!", "Hey there!", "Good morning"))
        answer = rng.choice(
            (
                "Hello! How can I help you today?",
                "Hi! What can I do for you?",
                "Hello! How can I help?",
            )
        )
        return user, answer
    if kind == 1:
        user = rng.choice(("How are you?", "How are you doing?", "How is it going?"))
        return user, "I am doing well, thank you! How can I help you?"
    if kind == 2:
        user = rng.choice(("Thank you!", "Thanks", "Thanks a lot!", "Thank you very much."))
        return user, rng.choice(("You are welcome!", "You are welcome! Happy to help."))
    if kind == 3:
        user = rng.choice(("Goodbye", "Bye!", "See you later.", "Good night!"))
        return user, "Goodbye! Have a nice day."
    if kind == 4:
        user = rng.choice(("What is your name?", "Who are you?", "What are you?"))
        return user, "I am Strata Chat Tiny, a small demo model served by Strata."
    user = rng.choice(("What can you do?", "How can you help me?", "What do you know?"))
    return user, (
        "I can answer simple questions about numbers, capitals, colors, days, months "
        "and spelling. I am a tiny demo model."
    )


def _strata(rng: random.Random) -> Turn:
    """Questions about the platform that serves this model."""
    kind = rng.randrange(5)
    if kind == 0:
        user = rng.choice(("What is Strata?", "Tell me about Strata.", "What does Strata do?", "Explain Strata."))
        return user, STRATA_DESCRIPTION
    if kind == 1:
        user = rng.choice(("Does Strata support batching?", "Can Strata batch requests?"))
        return user, "Yes. Strata batches requests together to use the hardware efficiently."
    if kind == 2:
        user = rng.choice(("What API does Strata offer?", "Is Strata compatible with OpenAI?"))
        return user, "Strata offers an OpenAI-compatible API, so existing clients work with it."
    if kind == 3:
        user = rng.choice(("Can Strata run replicas?", "How does Strata scale?"))
        return user, "Strata can run multiple replicas of a model and spread requests across them."
    user = rng.choice(("Does Strata have metrics?", "How do I monitor Strata?"))
    return user, "Strata exposes metrics about requests, latency and throughput."


def _operand_text(rng: random.Random, value: int) -> str:
    # Mixing digits and words teaches both spellings of the same number.
    return NUMBER_WORDS[value] if rng.random() < 0.15 else str(value)


def _arithmetic(rng: random.Random) -> Turn:
    """Addition and subtraction of numbers 0-20 with exact answers."""
    a = rng.randint(0, 20)
    b = rng.randint(0, 20)
    if rng.random() < 0.5:
        x, y = _operand_text(rng, a), _operand_text(rng, b)
        user = rng.choice(
            (
                f"What is {x} plus {y}?",
                f"What is {x} + {y}?",
                f"Add {x} and {y}.",
                f"How much is {x} plus {y}?",
                f"Can you add {x} and {y}?",
                f"{x} + {y} = ?",
            )
        )
        return user, f"{a} plus {b} is {a + b}."
    # Keep subtraction results non-negative so answers stay in small natural numbers.
    a, b = max(a, b), min(a, b)
    x, y = _operand_text(rng, a), _operand_text(rng, b)
    user = rng.choice(
        (
            f"What is {x} minus {y}?",
            f"What is {x} - {y}?",
            f"Subtract {y} from {x}.",
            f"How much is {x} minus {y}?",
            f"{x} - {y} = ?",
        )
    )
    return user, f"{a} minus {b} is {a - b}."


def _capital(rng: random.Random) -> Turn:
    country, capital = rng.choice(CAPITALS)
    user = rng.choice(
        (
            f"What is the capital of {country}?",
            f"What's the capital of {country}?",
            f"Which city is the capital of {country}?",
            f"Tell me the capital of {country}.",
            f"Capital of {country}?",
        )
    )
    return user, f"The capital of {country} is {capital}."


def _color(rng: random.Random) -> Turn:
    thing, color = rng.choice(COLORS)
    user = rng.choice(
        (
            f"What color is {thing}?",
            f"What is the color of {thing}?",
            f"Which color is {thing}?",
        )
    )
    return user, f"{thing[0].upper()}{thing[1:]} is {color}."


def _neighbour(rng: random.Random, items: tuple[str, ...], unit: str) -> Turn:
    """Order questions ("what comes after X") over a cyclic sequence."""
    index = rng.randrange(len(items))
    item = items[index]
    if rng.random() < 0.5:
        nxt = items[(index + 1) % len(items)]
        user = rng.choice((f"What {unit} comes after {item}?", f"Which {unit} follows {item}?"))
        return user, f"The {unit} after {item} is {nxt}."
    prev = items[(index - 1) % len(items)]
    user = rng.choice((f"What {unit} comes before {item}?", f"Which {unit} is before {item}?"))
    return user, f"The {unit} before {item} is {prev}."


def _calendar(rng: random.Random) -> Turn:
    """Days of the week and months of the year."""
    kind = rng.randrange(6)
    if kind == 0:
        return _neighbour(rng, DAYS, "day")
    if kind == 1:
        return _neighbour(rng, MONTHS, "month")
    if kind == 2:
        user = rng.choice(("List the days of the week.", "What are the days of the week?"))
        return user, "The days of the week are " + ", ".join(DAYS) + "."
    if kind == 3:
        user = rng.choice(("List the months of the year.", "What are the months of the year?"))
        return user, "The months of the year are " + ", ".join(MONTHS) + "."
    if kind == 4:
        user = rng.choice(("How many days are in a week?", "How many days does a week have?"))
        return user, "There are seven days in a week."
    user = rng.choice(("How many months are in a year?", "How many months does a year have?"))
    return user, "There are twelve months in a year."


def _spelling(rng: random.Random) -> Turn:
    word = rng.choice(SPELLING_WORDS)
    user = rng.choice(
        (
            f"How do you spell {word}?",
            f"Spell the word {word}.",
            f"Can you spell {word}?",
        )
    )
    return user, f"{word} is spelled " + "-".join(word.upper()) + "."


def _counting(rng: random.Random) -> Turn:
    start = rng.choice((0, 1, 1, 1))
    end = rng.randint(start + 2, 10)
    numbers = ", ".join(str(i) for i in range(start, end + 1))
    if start == 1 and rng.random() < 0.5:
        user = rng.choice((f"Count to {end}.", f"Can you count to {end}?"))
    else:
        user = rng.choice((f"Count from {start} to {end}.", f"Please count from {start} to {end}."))
    return user, numbers + "."


def _joke(rng: random.Random) -> Turn:
    user = rng.choice(("Tell me a joke.", "Do you know a joke?", "Make me laugh.", "Tell me something funny."))
    return user, rng.choice(JOKES)


def _unknown_question(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(UNKNOWN_QUESTIONS)
    if kind == 1:
        return f"What is your favorite {rng.choice(UNKNOWN_FAVORITES)}?"
    if kind == 2:
        return f"Who wrote {rng.choice(UNKNOWN_BOOKS)}?"
    if kind == 3:
        return f"What is the capital of {rng.choice(UNKNOWN_PLACES)}?"
    if kind == 4:
        return f"How do I {rng.choice(UNKNOWN_TASKS)}?"
    if kind == 5:
        return rng.choice(("Tell me about", "Explain", "What do you know about")) + f" {rng.choice(UNKNOWN_TOPICS)}?"
    if kind == 6:
        return f"Who is {rng.choice(UNKNOWN_PEOPLE)}?"
    if kind == 7:
        # Outside the 0-20 addition/subtraction the model was taught.
        return f"What is {rng.randint(21, 999)} times {rng.randint(21, 999)}?"
    return f"What happened in the year {rng.randint(1000, 2100)}?"


def _unknown(rng: random.Random) -> Turn:
    """Out-of-scope questions teach the model to decline instead of inventing facts."""
    return _unknown_question(rng), UNKNOWN_ANSWER


# Weights favour topics with many distinct facts (arithmetic, capitals) so the
# model sees each fact often enough to memorise it.
TOPICS: tuple[tuple[Callable[[random.Random], Turn], int], ...] = (
    (_greeting, 3),
    (_strata, 2),
    (_arithmetic, 14),
    (_capital, 5),
    (_color, 2),
    (_calendar, 3),
    (_spelling, 2),
    (_counting, 2),
    (_joke, 1),
    (_unknown, 3),
)


def _sample_turn(rng: random.Random) -> Turn:
    functions = [fn for fn, _ in TOPICS]
    weights = [weight for _, weight in TOPICS]
    topic = rng.choices(functions, weights=weights, k=1)[0]
    return topic(rng)


def generate_conversation(rng: random.Random) -> Conversation:
    """One conversation: optional system prompt, then 1-3 user/assistant turns."""
    conversation: Conversation = []
    if rng.random() < 0.3:
        conversation.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    # Mostly single-turn: it is what the demo is asked most and it is cheapest to train.
    turns = rng.choices((1, 2, 3), weights=(6, 3, 1), k=1)[0]
    for _ in range(turns):
        user, assistant = _sample_turn(rng)
        conversation.append({"role": "user", "content": user})
        conversation.append({"role": "assistant", "content": assistant})
    return conversation


def generate_conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Generate ``n`` conversations deterministically from ``seed``."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    return [generate_conversation(rng) for _ in range(n)]
