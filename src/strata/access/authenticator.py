"""Turns a bearer credential into a Principal without touching the database on the hot path.

Guarantee on revocation (and any other key change): the gateway that revokes a key drops it from
its cache at once, so its next request is refused. Every other gateway polls the shared
``access_keys_version`` counter every ``revocation_poll_ms`` (100 ms by default) and clears its cache
when the counter moved, so a revoked key is refused there from at most one poll interval (plus
one database round trip) after the revocation committed. A cached entry is also re-read after
``key_cache_ttl_s`` whatever happens, and expiry times are checked on every request.

With ``strict=True`` (``access.revocation: strict``) every API-key request first reads the counter
itself: a key revoked on any gateway is refused on the very next request everywhere, for one small
database read per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC

from strata.access.jwt import JWTVerifier
from strata.access.keystore import KeyInfo, KeyStore
from strata.access.secrets import KEY_PREFIX, hash_key
from strata.errors import Unauthenticated
from strata.principal import Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal | None  # None: the key is unknown, revoked or expired (negative entries spare the DB)
    expires_at: float | None  # the key's own expiry, epoch seconds
    cached_until: float


class Authenticator:
    def __init__(
        self,
        keys: KeyStore,
        *,
        jwt: JWTVerifier | None = None,
        cache_ttl_s: float = 60.0,
        poll_interval_s: float = 0.1,
        max_negative_entries: int = 10_000,
        strict: bool = False,
    ) -> None:
        self.keys = keys
        self.jwt = jwt
        self.cache_ttl_s = cache_ttl_s
        self.poll_interval_s = poll_interval_s
        self.max_negative_entries = max_negative_entries
        self.strict = strict
        self._cache: dict[str, _Cached] = {}
        self._negative = 0
        self._version: int | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._version = await self.keys.version()
        self._poller = asyncio.create_task(self._poll_versions(), name="access-key-version-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def invalidate(self) -> None:
        """Forget every cached key (called by this gateway's own key changes)."""
        self._cache.clear()
        self._negative = 0

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.", code="missing_api_key"
            )
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("The Authorization header must be 'Bearer YOUR_KEY'.")
        if self.jwt is not None and credential.count(".") == 2 and not credential.startswith(KEY_PREFIX):
            return await self.jwt.verify(credential)
        return await self._api_key(credential)

    async def _api_key(self, key: str) -> Principal:
        # Looked up by SHA-256 of the key: a timing difference in the dict lookup can only reveal bits of
        # a hash of a 256-bit secret, which is of no use for finding the key.
        digest = hash_key(key)
        if self.strict:
            await self._check_version()
        now = time.time()
        entry = self._cache.get(digest)
        if entry is None or entry.cached_until < now:
            entry = await self._load(digest, now)
        if entry.principal is None or (entry.expires_at is not None and entry.expires_at <= now):
            raise Unauthenticated("Incorrect, revoked or expired API key.")
        return entry.principal

    async def _load(self, digest: str, now: float) -> _Cached:
        info = await self.keys.find(digest)
        entry = _Cached(_principal(info, now), _expiry(info), now + self.cache_ttl_s)
        if entry.principal is None:
            if self._negative >= self.max_negative_entries:  # a flood of random keys must not grow memory
                return entry
            self._negative += 1
        self._cache[digest] = entry
        return entry

    async def _poll_versions(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self._check_version()
            except Exception:  # the task loop is the boundary: keep polling through a database blip
                log.exception("could not read the keys version; keeping the cache")

    async def _check_version(self) -> None:
        version = await self.keys.version()
        if version != self._version:
            self._version = version
            self.invalidate()


def _principal(info: KeyInfo | None, now: float) -> Principal | None:
    if info is None or info.revoked_at is not None:
        return None
    if info.expires_at is not None and info.expires_at.timestamp() <= now:
        return None
    models = None if info.models is None else frozenset(info.models)
    return Principal(tenant=info.tenant, key_id=info.key_id, scopes=frozenset(info.scopes), models=models)


def _expiry(info: KeyInfo | None) -> float | None:
    if info is None or info.expires_at is None:
        return None
    return info.expires_at.astimezone(UTC).timestamp()
