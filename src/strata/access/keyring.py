"""The data key ring: AES-GCM keys by id, read once from the environment (or a file it names).

The first key is the active one: everything sealed from now on uses it, and each ciphertext carries
its key id. Rotation without downtime is therefore: put the new key first and keep the old ones
after it (every gateway restarts with the new list at its own pace; old rows still open), then run
``strata data rekey`` to move the old rows to the active key, then drop the old key.

A sealed blob is ``nonce (12 bytes) || ciphertext || tag``; the associated data binds it to its row
(the tenant and the request's hash), so a ciphertext moved to another tenant's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strata.errors import SpecError

NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEY_SIZES = (16, 24, 32)


class DataKeyError(SpecError):
    """The data keys are missing or malformed; the message names the variable (never a key)."""

    code = "invalid_data_keys"


class SealedDataError(Exception):
    """A ciphertext that no key of the ring opens (unknown key id, or altered/moved data)."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, AESGCM], ...]  # (key id, cipher), the active key first

    @property
    def active_id(self) -> str:
        return self.keys[0][0]

    @property
    def ids(self) -> list[str]:
        return [key_id for key_id, _ in self.keys]

    def seal(self, plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
        """(active key id, nonce || ciphertext) of ``plaintext``."""
        key_id, cipher = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond any table's row count per key
        return key_id, nonce + cipher.encrypt(nonce, plaintext, associated)

    def open(self, key_id: str, blob: bytes, associated: bytes) -> bytes:
        cipher = dict(self.keys).get(key_id)
        if cipher is None:
            raise SealedDataError(f"sealed with key '{key_id}', which is not in the key ring ({', '.join(self.ids)})")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
        except InvalidTag:
            raise SealedDataError(f"the ciphertext does not open with key '{key_id}' (altered or moved)") from None


def parse_keys(text: str, source: str) -> KeyRing:
    """A ring from 'id:base64key' entries separated by commas or new lines; ``source`` names where the
    text came from in every error."""
    entries = [e.strip() for e in re.split(r"[,\n]", text) if e.strip() and not e.strip().startswith("#")]
    if not entries:
        raise DataKeyError(f"{source}: no keys (expected 'id:base64key,...', the active key first)")
    keys: list[tuple[str, AESGCM]] = []
    for position, entry in enumerate(entries, 1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not KEY_ID_PATTERN.match(key_id):
            raise DataKeyError(f"{source}: entry {position} is not 'id:base64key' (id: letters, digits, . _ -)")
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise DataKeyError(f"{source}: key '{key_id}' is not valid base64") from None
        if len(raw) not in _KEY_SIZES:
            raise DataKeyError(f"{source}: key '{key_id}' is {len(raw)} bytes; AES-GCM needs 16, 24 or 32")
        if key_id in (k for k, _ in keys):
            raise DataKeyError(f"{source}: key id '{key_id}' appears twice")
        keys.append((key_id, AESGCM(raw)))
    return KeyRing(tuple(keys))


def keyring_from_env(environ: Mapping[str, str], keys_env: str, keys_file_env: str) -> KeyRing | None:
    """The ring from ``keys_env``, else from the file ``keys_file_env`` names; None when neither is set."""
    inline, file_name = environ.get(keys_env, "").strip(), environ.get(keys_file_env, "").strip()
    if inline and file_name:
        raise DataKeyError(f"{keys_env} and {keys_file_env} are both set: set one")
    if inline:
        return parse_keys(inline, keys_env)
    if file_name:
        path = Path(file_name)
        try:
            text = path.read_text()
        except OSError as error:
            raise DataKeyError(f"{keys_file_env}: cannot read '{path}' ({error.strerror})") from None
        return parse_keys(text, f"{keys_file_env} ({path})")
    return None


def new_key(size: int = 32) -> str:
    """A fresh random key, base64 (what `strata data new-key` prints)."""
    return base64.b64encode(os.urandom(size)).decode()
