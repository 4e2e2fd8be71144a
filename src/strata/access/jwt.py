"""JWT bearer tokens (OAuth2 resource server) verified with PyJWT.

Keys come from a JWKS file, a JWKS URL or a shared HMAC secret - one source per app. The allowed
algorithms are the spec's list cut to the source's family: HS* only with a shared secret, only
asymmetric ones with a JWKS, and each token's ``alg`` must also match its key's type. So ``none``
never passes, and an HS256 token "signed" with an RSA public key finds no HMAC key to check against.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt

from strata.errors import SpecError, Unauthenticated
from strata.principal import SCOPES, Principal
from strata.spec.models import JWTSpec

_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}
_UNKNOWN_KID_REFRESH_S = 60.0  # an unknown kid may refetch the JWKS URL at most this often


def _family(algorithm: str) -> str | None:
    return _FAMILY.get(algorithm[:2])


class JWTVerifier:
    def __init__(self, spec: JWTSpec) -> None:
        self.spec = spec
        self._keys: dict[str | None, pyjwt.PyJWK] = {}
        self._fetched_at = 0.0
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
            await self._fetch()

    async def _fetch(self) -> None:
        assert self.spec.jwks_url is not None
        self._fetched_at = time.monotonic()
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.spec.jwks_url)
            response.raise_for_status()
        self._load_jwks(response.json())

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
        if (
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
