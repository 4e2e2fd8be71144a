"""The chat stream's output guards (completions._guarded) over a stream of generation events: the
token window, the time window that releases text while the model is slow, decisions recorded."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from strata.access.audit import AuditEvent
from strata.errors import GuardrailBlocked
from strata.gateway.completions import _guarded
from strata.governance.layer import Guardrails
from strata.principal import Principal
from strata.record import RequestRecord
from strata.serving.generation import GenerationEvent
from strata.spec.guardrails import GuardrailsSpec


def guardrails(hold_back_tokens: int, hold_back_ms: float | None = None) -> tuple[Guardrails, list[AuditEvent]]:
    spec = GuardrailsSpec.model_validate(
        {
            "guards": [{"name": "pii", "kind": "pii", "action": "redact"},
                       {"name": "stop", "kind": "terms", "deny": ["forbidden"], "action": "block"}],
            "bindings": [{"guards": ["pii", "stop"], "hold_back_tokens": hold_back_tokens,
                          "hold_back_ms": hold_back_ms}],
        }
    )  # fmt: skip
    events: list[AuditEvent] = []

    async def ask(route: str, text: str) -> Any:
        raise AssertionError("no model guard")

    return Guardrails(spec, ask, events.append), events


async def generation(pieces: list[str], delay_s: float = 0.0) -> AsyncIterator[GenerationEvent]:
    for index, piece in enumerate(pieces[1:], start=2):
        await asyncio.sleep(delay_s)
        yield GenerationEvent(piece, 3, index, "stop" if index == len(pieces) else None)


async def collect(layer: Guardrails, pieces: list[str], delay_s: float = 0.0) -> tuple[list[str], RequestRecord]:
    guards = layer.for_request("chat", "t")
    assert guards is not None
    record = RequestRecord("POST", "/v1/chat/completions", caller=Principal("t", "k", frozenset()))
    first = GenerationEvent(pieces[0], 3, 1)
    out = [e.text async for e in _guarded(first, generation(pieces, delay_s), layer, guards, record)]
    return out, record


async def test_token_window_redacts_across_pieces_and_records_once() -> None:
    layer, audit = guardrails(hold_back_tokens=4)
    out, record = await collect(layer, ["Mail ", "ann", "@exam", "ple.org", " now", " please", "."])
    assert "".join(out) == "Mail [EMAIL] now please."
    assert not any("ann" in piece for piece in out)
    assert [(d.guard, d.action, d.count) for d in record.guards or []] == [("pii", "redact", 1)]
    assert [e.action for e in audit] == ["guard.redact"]
    assert record.guard_s > 0


async def test_time_window_releases_while_the_model_is_slow() -> None:
    layer, _ = guardrails(hold_back_tokens=100, hold_back_ms=5)
    out, _ = await collect(layer, ["a ", "b ", "c ", "d"], delay_s=0.03)
    # Without the time limit all would wait for the end (a 100-token window); with it each piece leaves
    # on its own, 5 ms after it came, before the next one arrives.
    assert [piece for piece in out if piece] == ["a ", "b ", "c ", "d"]


async def test_block_ends_the_stream_before_the_text_leaves() -> None:
    layer, audit = guardrails(hold_back_tokens=3)
    sent: list[str] = []
    with pytest.raises(GuardrailBlocked):
        sent += [e for e in (await collect(layer, ["this ", "is ", "forbidden ", "text ", "here"]))[0]]
    assert "forbidden" not in "".join(sent)
    assert [e.action for e in audit] == ["guard.block"]
