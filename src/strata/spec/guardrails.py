"""Guardrails in the app spec: named guards, and which routes and tenants they apply to.

A guard is one detector (PII, term policy, prompt injection, or a served classification model) with a
stage (input, output or both) and an action (block, redact, flag). A binding attaches guards to the
requests of a route and a tenant (either may be ``*``); a request runs every guard of every binding
that matches it. Routes with no matching binding run no guard code at all.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"

PIIType = Literal["email", "phone", "card", "iban", "ip", "national_id", "secret"]
"""email; phone (international or North American); card (13-19 digits passing Luhn); iban (mod-97);
ip (IPv4 and IPv6); national_id (US SSN, UK NINO, Spanish DNI/NIE with its letter, Dutch BSN with
the 11-test); secret (Strata API keys, OpenAI, AWS, GitHub, Slack, JWTs, PEM private keys)."""

ALL_PII: tuple[PIIType, ...] = ("email", "phone", "card", "iban", "ip", "national_id", "secret")

GuardKind = Literal["pii", "terms", "injection", "model"]
Stage = Literal["input", "output"]
Action = Literal["block", "redact", "flag"]
_BOTH_STAGES: tuple[Stage, ...] = ("input", "output")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelGuardSpec(_Spec):
    route: str = Field(description="A route of this app serving task 'predict': the text is its one input.")
    labels: list[str] = Field(
        default_factory=lambda: ["unsafe"],
        min_length=1,
        description="Labels that trigger the guard. The model returns {'label': ..., 'score': ...} per input "
        "(or a bare label string).",
    )
    threshold: float = Field(default=0.5, ge=0, le=1, description="Lowest score of a triggering label that counts.")


class GuardSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN, description="Name bindings use; shown in audit events and errors.")
    kind: GuardKind = Field(description="pii, terms (deny list and regexes), injection, or model (a served route).")
    stages: list[Stage] = Field(
        default_factory=lambda: list(_BOTH_STAGES), min_length=1, description="Where it runs: input, output, or both."
    )
    action: Action = Field(
        default="flag",
        description="block: refuse (input: a 400; output: an error, in-band on a stream); redact: replace each "
        "finding with [KIND]; flag: only record it (request record and audit trail).",
    )
    pii: list[PIIType] = Field(
        default_factory=lambda: list(ALL_PII), description="kind pii: which types to look for (default: all)."
    )
    deny: list[str] = Field(
        default_factory=list, description="kind terms: words or phrases (whole words, any case) that are findings."
    )
    patterns: list[str] = Field(default_factory=list, description="kind terms: regular expressions that are findings.")
    allow: list[str] = Field(
        default_factory=list,
        description="Exact strings never reported by this guard (e.g. your own support address).",
    )
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="kind injection: the classifier's probability that counts as an attack."
    )
    classifier_route: str | None = Field(
        default=None,
        description="kind injection: an embedding route serving all-MiniLM-L6-v2 for the shipped classifier; "
        "None: heuristics only.",
    )
    model: ModelGuardSpec | None = Field(default=None, description="kind model: the classification route to ask.")

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"patterns[{index}]: not a regular expression ({error})") from None
        return patterns

    @model_validator(mode="after")
    def _options_match_kind(self) -> GuardSpec:
        if self.kind == "model" and self.model is None:
            raise ValueError("kind 'model' needs 'model' (route, labels, threshold)")
        if self.kind == "terms" and not (self.deny or self.patterns):
            raise ValueError("kind 'terms' needs 'deny' or 'patterns'")
        if self.kind == "injection" and "output" in self.stages:
            raise ValueError("kind 'injection' runs on input only: set stages: [input]")
        if self.kind in ("injection", "model") and self.action == "redact":
            raise ValueError(f"kind '{self.kind}' judges a whole text: its action is block or flag, not redact")
        return self


class GuardBindingSpec(_Spec):
    route: str = Field(default="*", description="The route (the model name clients send); '*' for every route.")
    tenant: str = Field(default="*", description="The tenant; '*' for every tenant.")
    guards: list[str] = Field(min_length=1, description="Names of guards in guardrails.guards.")
    hold_back_tokens: int = Field(
        default=16,
        ge=0,
        le=1024,
        description="Streams: output is held back this many tokens so a finding split across tokens is "
        "caught before it leaves; nothing older is held. 0 checks each token alone.",
    )
    hold_back_ms: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="Streams: also release held text once it has waited this long, however few tokens follow.",
    )


class GuardrailsSpec(_Spec):
    guards: list[GuardSpec] = Field(default_factory=list, description="The guards this app defines.")
    bindings: list[GuardBindingSpec] = Field(
        default_factory=list, description="Which guards run for which route and tenant."
    )

    @model_validator(mode="after")
    def _names_resolve(self) -> GuardrailsSpec:
        names = [g.name for g in self.guards]
        problems = [f"guards[{i}].name: duplicate name '{n}'" for i, n in enumerate(names) if n in names[:i]]
        for index, binding in enumerate(self.bindings):
            problems += [
                f"bindings[{index}].guards: unknown guard '{name}' (known: {', '.join(sorted(names))})"
                for name in binding.guards
                if name not in names
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return self
