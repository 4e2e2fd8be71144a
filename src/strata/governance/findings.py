"""What detectors report and what guards decide: typed, small, and free of the matched text.

A ``Finding`` locates a span in the text that was scanned; a ``GuardDecision`` is what one guard did
about one stage of one request. Decisions go into the request record and the audit trail, so they
carry kinds and counts, never the sensitive text itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from strata.record import GuardDecision

__all__ = ["Detector", "Finding", "GuardDecision", "decision", "redact"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # e.g. "email", "card", "term", "injection"
    start: int
    end: int
    score: float = 1.0


class Detector(Protocol):
    """A synchronous scan: cheap enough to run on the event loop (precompiled regexes, no I/O)."""

    def find(self, text: str) -> list[Finding]: ...


def decision(guard: str, stage: str, action: str, findings: Iterable[Finding]) -> GuardDecision:
    found = list(findings)
    return GuardDecision(guard, stage, action, tuple(sorted({f.kind for f in found})), len(found))


def redact(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with each finding replaced by ``[KIND]``; overlapping findings merge into the first's kind."""
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    parts: list[str] = []
    position = 0
    for finding in ordered:
        if finding.end <= position:
            continue  # inside a span already replaced
        start = max(finding.start, position)
        parts.append(text[position:start])
        if start == finding.start:
            parts.append(f"[{finding.kind.upper()}]")
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)
