"""Term and topic policies: a deny list of words or phrases and the operator's own regexes.

The deny list compiles into one case-insensitive alternation with word boundaries (one pass over
the text however long the list); each regex is compiled once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from strata.governance.findings import Finding


class TermDetector:
    def __init__(self, deny: Sequence[str], patterns: Sequence[str]) -> None:
        self.deny = None
        self.words: tuple[str, ...] = ()
        if deny:
            # Longest first, so a phrase wins over a word it starts with.
            words = sorted({w.strip() for w in deny if w.strip()}, key=len, reverse=True)
            self.deny = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
            self.words = tuple(w.lower() for w in words)
        self.patterns = [re.compile(pattern) for pattern in patterns]

    def find(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        # Most texts contain no listed word: substring tests on the lowered text (C speed) decide that
        # before the case-insensitive regex, whose lookbehind makes it try every position.
        lowered = text.lower() if self.deny is not None else ""
        if self.deny is not None and any(word in lowered for word in self.words):
            findings += [Finding("term", m.start(), m.end()) for m in self.deny.finditer(text)]
        for pattern in self.patterns:
            findings += [Finding("pattern", m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
        return findings
