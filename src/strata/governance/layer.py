"""The guardrails layer: which guards a request runs, and running them on its input and its output.

``Guardrails.for_request(route, tenant)`` answers from a dict built once per (route, tenant) pair:
a route and tenant with no binding get ``None`` and pay one dictionary lookup. Every decision (a
guard that found something) is appended to the request record and queued as an audit event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from strata.access.audit import AuditEvent
from strata.errors import GuardrailBlocked
from strata.governance.findings import GuardDecision, decision, redact
from strata.governance.guard import Ask, Guard, build_guard
from strata.governance.injection import InjectionClassifier
from strata.observability.lean import LeanCounter
from strata.record import RequestRecord
from strata.spec.guardrails import GuardrailsSpec

Audit = Callable[[AuditEvent], None]


@dataclass(frozen=True)
class GuardSet:
    """The guards of one (route, tenant): split by stage, with the stream's hold-back window."""

    input: tuple[Guard, ...]
    output: tuple[Guard, ...]
    hold_back_tokens: int
    hold_back_ms: float | None


class Guardrails:
    def __init__(self, spec: GuardrailsSpec, ask: Ask, audit: Audit, counter: LeanCounter | None = None) -> None:
        self.spec = spec
        self.ask = ask
        self.audit = audit
        self.counter = counter  # strata_guard_decisions: the guard-hit rate per route, for alerts
        needs_classifier = any(g.classifier_route is not None for g in spec.guards)
        classifier = InjectionClassifier.load() if needs_classifier else None
        self.guards = {g.name: build_guard(g, classifier) for g in spec.guards}
        self._sets: dict[tuple[str, str], GuardSet | None] = {}

    @property
    def active(self) -> bool:
        return bool(self.spec.bindings)

    def for_request(self, route: str, tenant: str) -> GuardSet | None:
        key = (route, tenant)
        try:
            return self._sets[key]
        except KeyError:
            found = self._sets[key] = self._build_set(route, tenant)
            return found

    def _build_set(self, route: str, tenant: str) -> GuardSet | None:
        bindings = [
            b for b in self.spec.bindings if b.route in ("*", route) and b.tenant in ("*", tenant)
        ]  # the tenant names come from keys the operator made: the cache stays as small as that list
        if not bindings:
            return None
        names = list(dict.fromkeys(name for b in bindings for name in b.guards))
        guards = [self.guards[name] for name in names]
        # Where several bindings match, the most careful window wins: the longest hold-back.
        timed = [b.hold_back_ms for b in bindings if b.hold_back_ms is not None]
        return GuardSet(
            input=tuple(g for g in guards if "input" in g.stages),
            output=tuple(g for g in guards if "output" in g.stages),
            hold_back_tokens=max(b.hold_back_tokens for b in bindings),
            hold_back_ms=max(timed) if timed else None,
        )

    async def check_input(self, guards: Sequence[Guard], texts: list[str], record: RequestRecord) -> list[str]:
        """``texts`` (a prompt's messages) after the input guards: redacted where a guard redacts;
        GuardrailBlocked where one blocks. Regex guards first: a blocked prompt never reaches a model."""
        started = time.perf_counter()
        try:
            for guard in sorted(guards, key=_order):
                findings = [guard.find(text) for text in texts]
                if guard.asks:
                    whole = "\n".join(texts)
                    verdict = await guard.judge(whole, self.ask)
                    if verdict:
                        findings = [*findings, verdict]
                if any(findings):
                    flat = [f for found in findings for f in found]
                    self.decide(record, decision(guard.name, "input", guard.action, flat))
                    if guard.action == "redact":
                        texts = [redact(t, f) if f else t for t, f in zip(texts, findings, strict=False)]
            return texts
        finally:
            record.guard_s += time.perf_counter() - started

    async def check_output(self, guards: Sequence[Guard], text: str, record: RequestRecord) -> str:
        """A whole answer after the output guards (redacted, or GuardrailBlocked)."""
        started = time.perf_counter()
        try:
            for guard in sorted(guards, key=_order):
                findings = guard.find(text)
                if guard.asks:
                    findings += await guard.judge(text, self.ask)
                if findings:
                    self.decide(record, decision(guard.name, "output", guard.action, findings))
                    if guard.action == "redact":
                        text = redact(text, findings)
            return text
        finally:
            record.guard_s += time.perf_counter() - started

    def decide(self, record: RequestRecord, made: GuardDecision) -> None:
        """Record and audit one decision; a block raises after both."""
        self.note(record, made)
        if made.action == "block":
            raise blocked(made)

    def note(self, record: RequestRecord, made: GuardDecision) -> None:
        """Record and audit one decision (a stream's, whose block has already ended it)."""
        if record.guards is None:
            record.guards = []
        record.guards.append(made)
        caller = record.caller
        detail = {**made.detail(), "model": record.model, "request_sha256": record.request_sha256}
        if self.counter is not None:
            labels = {"route": record.model or "", "guard": made.guard, "stage": made.stage, "action": made.action}
            self.counter.labels(**labels).inc()
        status = GuardrailBlocked.status if made.action == "block" else 200
        self.audit(AuditEvent("guard", f"guard.{made.action}", status, caller.tenant, caller.key_id, detail))


def blocked(made: GuardDecision) -> GuardrailBlocked:
    where = "the prompt" if made.stage == "input" else "the model's answer"
    return GuardrailBlocked(
        f"Guardrail '{made.guard}' blocked {where}: it found {', '.join(made.kinds)}.",
        param="messages" if made.stage == "input" else None,
    )


def _order(guard: Guard) -> tuple[bool, bool]:
    """Regexes before model calls (a blocked prompt never costs a model call); blocks before redactions
    (a redaction must not hide what a block guard looks for)."""
    return guard.asks, guard.action != "block"
