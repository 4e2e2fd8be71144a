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

Unknown keys never cost a database read per request: each gateway holds the set of the SHA-256
digests of every unrevoked key (reloaded when the counter moves), and a digest outside it is refused
from memory. A miss waits for one read of the counter that starts after it, shared by every miss
meanwhile and at most one per ``revocation_poll_ms``: a key just created on another gateway works
here on its first request, and a flood of random keys costs the database what the poller already
costs it (each bad key waits up to one poll interval for its 401). Until the set is loaded (at
start, or when a reload failed) lookups go to the database as before, through a negative cache of
bounded size. After a key change the previous set serves until the new one is loaded; a key it
lacks waits for that load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy.exc import SQLAlchemyError

from strata.access.jwt import JWTVerifier
from strata.access.keystore import KeyInfo, KeyStore
from strata.access.secrets import KEY_PREFIX, hash_key
from strata.errors import DependencyUnavailable, Unauthenticated
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
        self._known: frozenset[str] | None = None  # digests of every unrevoked key; None: not loaded
        self._generation = 0  # bumped by every invalidation: a reload started before one is stale
        self._reload: asyncio.Task[None] | None = None
        self._last_miss_check = float("-inf")
        self._miss_check: asyncio.Future[None] | None = None  # the next counter read misses wait for
        self.database_reads = 0  # key lookups and counter reads made for requests (tests and metrics)

    async def start(self) -> None:
        self._version = await self.keys.version()
        await self._reload_known(self._generation)
        self._poller = asyncio.create_task(self._poll_versions(), name="access-key-version-poller")

    async def stop(self) -> None:
        for task in (self._poller, self._reload, self._miss_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def invalidate(self) -> None:
        """Forget every cached key and reload the set of known ones (called on every key change). Until
        the new set arrives the old one stays: a key it lacks waits for the reload, not for the database."""
        self._cache.clear()
        self._negative = 0
        self._generation += 1
        with contextlib.suppress(RuntimeError):  # no running loop: the next start() loads the set
            self._reload = asyncio.get_running_loop().create_task(
                self._reload_known(self._generation), name="access-known-keys"
            )

    async def _reload_known(self, generation: int) -> None:
        try:
            known = await self.keys.active_hashes()
        except Exception:  # a task's boundary: until a reload works, keys are looked up one by one
            log.exception("could not load the known key digests; looking keys up one by one")
            if generation == self._generation:
                self._known = None
            return
        if generation == self._generation:  # else a newer change started a newer reload
            self._known = known

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
            self.database_reads += 1
            await self._check_version()
        if self._known is not None and digest not in self._known:
            await self._recheck_on_miss()
            if digest not in self._known:
                raise Unauthenticated("Incorrect, revoked or expired API key.")
        now = time.time()
        entry = self._cache.get(digest)
        if entry is None or entry.cached_until < now:
            try:
                entry = await self._load(digest, now)
            except (DependencyUnavailable, SQLAlchemyError, OSError) as error:
                # The database is down: a key this gateway already knew keeps working (revocations
                # cannot be read now either); any other gets 503, never a 500.
                if entry is None:
                    log.warning("could not look up an API key: %s", error)
                    raise DependencyUnavailable(
                        "The key store cannot be reached right now; retry shortly.", retry_after_s=1.0
                    ) from None
        if entry.principal is None or (entry.expires_at is not None and entry.expires_at <= now):
            raise Unauthenticated("Incorrect, revoked or expired API key.")
        return entry.principal

    async def _recheck_on_miss(self) -> None:
        """Wait for a read of the key counter that starts after this miss, shared by every miss until it
        starts, and at most one per poll interval: a key created on another gateway a moment ago is
        found (the counter moved, the set reloads), and a flood of bad keys costs one read per interval,
        not one per key (its requests wait up to that interval for their 401)."""
        if self._miss_check is None:
            start_at = max(time.monotonic(), self._last_miss_check + self.poll_interval_s)
            self._miss_check = asyncio.ensure_future(self._check_version_at(start_at))
        with contextlib.suppress(Exception):  # the poller logs database trouble; here the key is refused
            await asyncio.shield(self._miss_check)
        while self._reload is not None and not self._reload.done():  # the counter moved: the set reloads
            await asyncio.shield(self._reload)

    async def _check_version_at(self, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        self._miss_check = None  # misses from now on wait for the next read: this one may predate them
        self._last_miss_check = time.monotonic()
        self.database_reads += 1
        await self._check_version()

    async def _load(self, digest: str, now: float) -> _Cached:
        self.database_reads += 1
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
