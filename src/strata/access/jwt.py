"""JWT bearer tokens (OAuth2 resource server) verified with PyJWT.

Keys come from a JWKS file, a JWKS URL or a shared HMAC secret - one source per app. The allowed
algorithms are the spec's list cut to the source's family: HS* only with a shared secret, only
asymmetric ones with a JWKS, and each token's ``alg`` must also match its key's type. So ``none``
never passes, and an HS256 token "signed" with an RSA public key finds no HMAC key to check against.

A JWKS URL that cannot be fetched (issuer down, bad answer) never becomes a 500: the request gets
503 with ``Retry-After`` (``dependency_unavailable``), a failed fetch is retried at most once per
``JWKS_RETRY_S`` whatever the request rate, and concurrent requests share one fetch. A gateway
whose first fetch fails still starts, and answers 503 to tokens until a fetch succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt

from strata.errors import DependencyUnavailable, SpecError, Unauthenticated
from strata.principal import SCOPES, Principal
from strata.spec.models import JWTSpec

_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}
log = logging.getLogger(__name__)

_UNKNOWN_KID_REFRESH_S = 60.0  # an unknown kid may refetch the JWKS URL at most this often
JWKS_RETRY_S = 5.0  # after a failed fetch, the next one waits this long (requests meanwhile get 503)
JWKS_TIMEOUT_S = 3.0


def _family(algorithm: str) -> str | None:
    return _FAMILY.get(algorithm[:2])


class JWTVerifier:
    def __init__(self, spec: JWTSpec) -> None:
        self.spec = spec
        self._keys: dict[str | None, pyjwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._loaded = False  # a JWKS URL's keys were fetched at least once
        self._failed_at: float | None = None  # when the last fetch failed, if it did
        self._fetching: asyncio.Future[None] | None = None
        if spec.secret_env is not None:
            secret = os.environ.get(spec.secret_env)
            if not secret:
                raise SpecError(f"access.jwt.secret_env: the environment variable {spec.secret_env} is not set")
            self.algorithms = [a for a in spec.algorithms if _family(a) == "oct"] or ["HS256"]
            self._keys[None] = pyjwt.PyJWK({"kty": "oct", "k": pyjwt.utils.base64url_encode(secret.encode()).decode()})
        else:
            self.algorithms = [a for a in spec.algorithms if _family(a) not in (None, "oct")]
            if not self.algorithms:
                raise SpecError(
                    "access.jwt.algorithms: a JWKS needs at least one asymmetric algorithm (RS, PS, ES, Ed)"
                )
            if spec.jwks_file is not None:
                self._load_jwks(json.loads(Path(spec.jwks_file).read_text()))

    async def start(self) -> None:
        if self.spec.jwks_url is not None:
            try:
                await self._fetch()
            except DependencyUnavailable as error:  # serve anyway: tokens get 503 until the issuer answers
                log.warning("%s", error.message)

    async def _fetch(self) -> None:
        """One fetch for every request waiting on it; 503 while the last failure is recent."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < JWKS_RETRY_S:
            raise self._unavailable(JWKS_RETRY_S - (time.monotonic() - self._failed_at))
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch_once())
        await asyncio.shield(self._fetching)

    async def _fetch_once(self) -> None:
        assert self.spec.jwks_url is not None
        self._fetched_at = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_S) as client:
                response = await client.get(self.spec.jwks_url)
                response.raise_for_status()
            self._load_jwks(response.json())
        except (httpx.HTTPError, ValueError, pyjwt.PyJWTError) as error:  # ValueError: not JSON
            self._failed_at = time.monotonic()
            log.warning("could not fetch the JWKS from %s: %s", self.spec.jwks_url, error)
            raise self._unavailable(JWKS_RETRY_S) from None
        self._failed_at = None
        self._loaded = True

    def _unavailable(self, retry_after_s: float) -> DependencyUnavailable:
        return DependencyUnavailable(
            "The token issuer's signing keys (JWKS) cannot be fetched right now; retry shortly.",
            retry_after_s=retry_after_s,
        )

    def _load_jwks(self, document: dict[str, Any]) -> None:
        keys: dict[str | None, pyjwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("kty") == "oct":
                continue  # symmetric keys never come from a JWKS here: see the module docstring
            keys[entry.get("kid")] = pyjwt.PyJWK(entry)
        self._keys = keys

    async def _key_for(self, kid: str | None) -> pyjwt.PyJWK:
        if self.spec.secret_env is not None:
            return self._keys[None]
        key = self._keys.get(kid)
        if self.spec.jwks_url is not None and not self._loaded:
            await self._fetch()  # never fetched yet (the first fetch failed): 503 until it works
            key = self._keys.get(kid)
        elif (
            key is None
            and self.spec.jwks_url is not None
            and time.monotonic() - self._fetched_at > _UNKNOWN_KID_REFRESH_S
        ):
            await self._fetch()  # the issuer may have rotated its keys
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("The token's signing key (kid) is not known.", code="invalid_token")
        return key

    async def verify(self, token: str) -> Principal:
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise Unauthenticated("The bearer token is not a well-formed JWT.", code="invalid_token") from None
        algorithm = str(header.get("alg", ""))
        key = await self._key_for(header.get("kid"))
        if algorithm not in self.algorithms or _family(algorithm) != key.key_type:
            raise Unauthenticated(f"The token's algorithm '{algorithm}' is not accepted.", code="invalid_token")
        try:
            claims = pyjwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.spec.audience,
                issuer=self.spec.issuer,
                leeway=self.spec.leeway_s,
                options={
                    "require": ["exp"] + (["aud"] if self.spec.audience else []) + (["iss"] if self.spec.issuer else [])
                },
            )
        except pyjwt.PyJWTError as error:
            # PyJWT's messages name the failed check (expired, audience, signature) and never the key.
            raise Unauthenticated(f"The bearer token was refused: {error}", code="invalid_token") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        tenant = claims.get(self.spec.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(f"The token has no '{self.spec.tenant_claim}' claim.", code="invalid_token")
        raw = claims.get(self.spec.scopes_claim, "")
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw] if isinstance(raw, list) else []
        models = claims.get(self.spec.models_claim)
        subject = str(claims.get("sub", "unknown"))
        return Principal(
            tenant=tenant,
            key_id=f"jwt:{subject}"[:128],
            scopes=frozenset(scopes) & SCOPES,
            models=frozenset(str(m) for m in models) if isinstance(models, list) else None,
            via="jwt",
        )
