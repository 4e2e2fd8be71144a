"""API key format and hashing.

A key is ``sk-strata-`` + 12 hex characters of id + ``.`` + 43 characters of secret (256 random bits).
SHA-256 is enough to store it: with 256 bits of entropy there is nothing to brute-force, so a slow
password hash (bcrypt, argon2) would only cost each request time without adding safety.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-strata-"


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What listings show: enough to recognise a key, nothing to use it."""
    return key[: len(KEY_PREFIX) + 12]


def same_hash(a: str, b: str) -> bool:
    return secrets.compare_digest(a, b)
