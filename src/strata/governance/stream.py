"""Output guards on a stream: a bounded hold-back window, so a finding split across tokens is caught
before any of it leaves, and nothing older than the window is ever held.

The window keeps the text of the newest ``hold_back_tokens`` tokens. It counts model tokens, not
pieces of text: a detokenizer emits text only when it makes whole characters or words, so one piece
can carry several tokens (about two for the shipped chat model), and a window of pieces would hold
that many times more than its setting. When the oldest piece falls out of it, the held text is
scanned whole and the oldest part released:

1. a block guard's finding anywhere in the held text blocks now (none of it has left);
2. a redact guard's finding that straddles the release point moves the point to the finding's end,
   so a span is released whole and redacted, never half;
3. findings wholly released are counted for the decisions (a span still held is found again on
   the next scan, and counted once, when it leaves).

A span of at most ``hold_back_tokens`` tokens is therefore always seen whole before its first
character leaves (a piece leaves only once more than ``hold_back_tokens`` tokens have come since
its start). Decisions are summed per guard and recorded once when the stream ends.
"""

from __future__ import annotations

import time
from collections import deque

from strata.governance.findings import Finding, GuardDecision, redact
from strata.governance.guard import Guard
from strata.governance.layer import blocked


class OutputWindow:
    def __init__(self, guards: tuple[Guard, ...], hold_back_tokens: int, hold_back_ms: float | None = None) -> None:
        self.guards = [g for g in guards if g.detector is not None]
        self.hold_back_tokens = hold_back_tokens
        self.hold_back_s = hold_back_ms / 1000 if hold_back_ms is not None else None
        self.held = ""
        # (length, when it arrived, tokens) of each held piece
        self.pieces: deque[tuple[int, float, int]] = deque()
        self._untexted = 0  # tokens decoded that have not made text yet: they count with the next piece
        self.counts: dict[str, dict[str, int]] = {}  # guard -> kind -> findings released
        self.guard_s = 0.0

    def push(self, text: str, tokens: int = 1) -> str:
        """Take a new piece, made of ``tokens`` model tokens; return what may leave now ("" while the
        window fills)."""
        if not text:
            self._untexted += tokens
        else:
            tokens += self._untexted
            self._untexted = 0
            self.held += text
            self.pieces.append((len(text), time.monotonic(), tokens))
        cut, over = 0, self.held_tokens - self.hold_back_tokens
        for length, _, piece_tokens in self.pieces:  # the oldest pieces, until the rest fits the window
            if over <= 0:
                break
            cut += length
            over -= piece_tokens
        return self._release(cut) if cut else ""

    @property
    def held_tokens(self) -> int:
        return sum(tokens for _, _, tokens in self.pieces)

    def due_in_s(self) -> float | None:
        """Seconds until the oldest held piece has waited ``hold_back_ms`` (None: no time limit or nothing held)."""
        if self.hold_back_s is None or not self.pieces:
            return None
        return max(0.0, self.pieces[0][1] + self.hold_back_s - time.monotonic())

    def release_due(self) -> str:
        """What has waited ``hold_back_ms``: released however few tokens followed it."""
        if self.hold_back_s is None:
            return ""
        limit = time.monotonic() - self.hold_back_s
        cut = 0
        for length, arrived, _ in self.pieces:
            if arrived > limit:
                break
            cut += length
        return self._release(cut) if cut else ""

    def flush(self) -> str:
        """The end of the stream: everything held, scanned."""
        return self._release(len(self.held))

    def decisions(self) -> list[GuardDecision]:
        made = []
        for guard in self.guards:
            kinds = self.counts.get(guard.name)
            if kinds:
                made.append(
                    GuardDecision(guard.name, "output", guard.action, tuple(sorted(kinds)), sum(kinds.values()))
                )
        return made

    def _release(self, cut: int) -> str:
        started = time.perf_counter()
        try:
            held = self.held
            found: list[tuple[Guard, list[Finding]]] = []
            for guard in self.guards:
                findings = guard.find(held)
                if not findings:
                    continue
                if guard.action == "block":  # 1.
                    self._count(guard, findings)
                    raise blocked(self.decisions_of(guard))
                found.append((guard, findings))
            moved = True
            while moved:  # 2. (a span reaching past a moved point moves it again)
                moved = False
                for _, findings in found:
                    for finding in findings:
                        if finding.start < cut < finding.end:
                            cut, moved = finding.end, True
            redactions: list[Finding] = []
            for guard, findings in found:
                released = [f for f in findings if f.start < cut]
                self._count(guard, released)  # 3.
                if guard.action == "redact":
                    redactions += released
            out = redact(held[:cut], redactions) if redactions else held[:cut]
            self.held = held[cut:]
            self._drop(cut)
            return out
        finally:
            self.guard_s += time.perf_counter() - started

    def decisions_of(self, guard: Guard) -> GuardDecision:
        kinds = self.counts.get(guard.name, {})
        return GuardDecision(guard.name, "output", guard.action, tuple(sorted(kinds)), sum(kinds.values()))

    def _count(self, guard: Guard, findings: list[Finding]) -> None:
        kinds = self.counts.setdefault(guard.name, {})
        for finding in findings:
            kinds[finding.kind] = kinds.get(finding.kind, 0) + 1

    def _drop(self, released: int) -> None:
        """Forget the pieces the first ``released`` characters came from (a piece cut in two keeps its rest)."""
        while released and self.pieces:
            length, arrived, tokens = self.pieces[0]
            if length <= released:
                self.pieces.popleft()
                released -= length
            else:  # the rest keeps the piece's tokens: the window errs on holding more, never less
                self.pieces[0] = (length - released, arrived, tokens)
                released = 0
