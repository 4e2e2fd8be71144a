"""Personal data and secrets in text: precompiled regexes, then a check digit where the type has one.

Each type is a ``(pattern, validator)`` pair compiled once at import; a scan costs one regex pass per
configured type, and a type whose telltale character is absent (``@`` for e-mail, a digit for numbers)
is skipped without running its regex at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

from strata.access.secrets import KEY_PREFIX
from strata.governance.checksums import bsn_ok, dni_ok, iban_ok, luhn_ok, ssn_ok
from strata.governance.findings import Finding

Validator = Callable[[re.Match[str], str], tuple[int, int] | None]
"""Given a candidate match and the whole text: the span to report, or None for a look-alike."""

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # international
    r"|\(?\b[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}"  # North American: (415) 555-0132, 415-555-0132
    r"|\b0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4})(?![\w])"  # national with a trunk 0: 020 7946 0958
)
_CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_SSN = re.compile(r"\b(\d{3})-(\d{2})-(\d{4})\b")
_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b(?:\d{8}|[XYZ]\d{7})-?[A-Z]\b")
_BSN = re.compile(r"\b\d{4}\.?\d{2}\.?\d{3}\b")
_BSN_CONTEXT = ("bsn", "burgerservice", "sofi")
_SECRET = re.compile(
    "|".join(
        (
            re.escape(KEY_PREFIX) + r"[A-Za-z0-9_.-]{12,}",  # Strata's own API keys
            r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI / Anthropic style
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub tokens
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"\bAIza[0-9A-Za-z_-]{35}",  # Google API keys
            r"\b[sr]k_live_[0-9A-Za-z]{16,}",  # Stripe live keys
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
            r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",  # PEM private keys
        )
    )
)


def _whole(match: re.Match[str], text: str) -> tuple[int, int] | None:
    return match.span()


def _phone(match: re.Match[str], text: str) -> tuple[int, int] | None:
    digits = sum(c.isdigit() for c in match.group())
    return match.span() if 9 <= digits <= 15 else None


def _card(match: re.Match[str], text: str) -> tuple[int, int] | None:
    digits = "".join(c for c in match.group() if c.isdigit())
    return match.span() if 13 <= len(digits) <= 19 and luhn_ok(digits) else None


def _iban(match: re.Match[str], text: str) -> tuple[int, int] | None:
    # The pattern may run on into a following upper-case word: shrink group by group until one checks.
    candidate = match.group()
    while len(candidate) >= 15:
        if iban_ok(candidate.replace(" ", "")):
            return match.start(), match.start() + len(candidate)
        candidate = candidate[: max(candidate.rfind(" "), len(candidate) - 4)].rstrip()
    return None


def _ipv6(match: re.Match[str], text: str) -> tuple[int, int] | None:
    value = match.group()
    if value.count(":") < 2 or not any(c.isalnum() for c in value):
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return match.span()


def _ssn(match: re.Match[str], text: str) -> tuple[int, int] | None:
    return match.span() if ssn_ok(*match.groups()) else None


def _dni(match: re.Match[str], text: str) -> tuple[int, int] | None:
    return match.span() if dni_ok(match.group().replace("-", "")) else None


def _bsn(match: re.Match[str], text: str) -> tuple[int, int] | None:
    # One nine-digit number in eleven passes the 11-test: a BSN also needs its name nearby.
    before = text[max(0, match.start() - 40) : match.start()].lower()
    if not any(word in before for word in _BSN_CONTEXT):
        return None
    return match.span() if bsn_ok(match.group().replace(".", "")) else None


# Per type: (telltale characters, or "" for none; [(pattern, validator, kind reported)]).
_RULES: dict[str, tuple[str, list[tuple[re.Pattern[str], Validator]]]] = {
    "email": ("@", [(_EMAIL, _whole)]),
    "phone": ("0123456789", [(_PHONE, _phone)]),
    "card": ("0123456789", [(_CARD, _card)]),
    "iban": ("0123456789", [(_IBAN, _iban)]),
    "ip": (".:", [(_IPV4, _whole), (_IPV6, _ipv6)]),
    "national_id": ("0123456789", [(_SSN, _ssn), (_NINO, _whole), (_DNI, _dni), (_BSN, _bsn)]),
    "secret": ("-_", [(_SECRET, _whole)]),
}


class PIIDetector:
    """Finds the configured PII types; each finding's kind is its type (``email``, ``card``, ...)."""

    def __init__(self, types: Iterable[str]) -> None:
        self.rules = [(kind, *_RULES[kind]) for kind in dict.fromkeys(types)]

    def find(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        for kind, telltale, rules in self.rules:
            if telltale and not any(char in text for char in telltale):
                continue
            for pattern, validator in rules:
                for match in pattern.finditer(text):
                    span = validator(match, text)
                    if span is not None:
                        findings.append(Finding(kind, span[0], span[1]))
        return findings
