"""JWT bearer tokens: the accepted shape, and the attacks that must fail."""

import asyncio
import base64
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from strata.access.jwt import JWTVerifier
from strata.errors import DependencyUnavailable, SpecError, Unauthenticated
from strata.spec import JWTSpec

ISSUER, AUDIENCE = "https://issuer.test", "strata"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> JWTVerifier:
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    return JWTVerifier(JWTSpec(jwks_file=str(jwks), issuer=ISSUER, audience=AUDIENCE, leeway_s=5))


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "tenant": "acme",
        "scope": "infer jobs",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str = "k1") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_a_valid_token_maps_claims_to_a_principal(verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    principal = await verifier.verify(_sign(signing_key, _claims(models=["m1"])))
    assert principal.tenant == "acme"
    assert principal.scopes == frozenset({"infer", "jobs"})
    assert principal.key_id == "jwt:alice"
    assert principal.allows_model("m1")
    assert not principal.allows_model("m2")


async def test_unknown_scopes_are_dropped(verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    principal = await verifier.verify(_sign(signing_key, _claims(scope=["infer", "superuser"])))
    assert principal.scopes == frozenset({"infer"})


async def test_small_clock_skew_is_tolerated(verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    assert await verifier.verify(_sign(signing_key, _claims(exp=now - 2, nbf=now + 2)))


# Overrides, not finished claims: times are taken when the test runs. Claims built at collection
# time expire before a test that runs minutes into the suite gets to them.
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -60}, "(?i)expired"),
        ({"aud": "someone-else"}, "(?i)audience"),
        ({"aud": None}, "aud"),
        ({"iss": "https://evil.test"}, "(?i)issuer"),
        ({"exp": None}, "exp"),
        ({"nbf": 600}, "(?i)not yet valid"),
        ({"tenant": None}, "tenant"),
    ],
)
async def test_bad_claims_are_refused(
    verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey, overrides: dict[str, Any], reason: str
) -> None:
    now = int(time.time())
    # exp and nbf are given relative to now.
    claims = _claims(**{k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in overrides.items()})
    with pytest.raises(Unauthenticated, match=reason):
        await verifier.verify(_sign(signing_key, claims))


async def test_alg_none_is_refused(verifier: JWTVerifier) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    token = f"{header}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(Unauthenticated, match="algorithm 'none'"):
        await verifier.verify(token)


async def test_a_bad_signature_is_refused(verifier: JWTVerifier) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthenticated, match="Signature"):
        await verifier.verify(_sign(impostor, _claims()))


async def test_a_tampered_payload_is_refused(verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    header, _, signature = _sign(signing_key, _claims()).split(".")
    forged = _b64(json.dumps(_claims(tenant="victim")).encode())
    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_an_unknown_kid_is_refused(verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(Unauthenticated, match="kid"):
        await verifier.verify(_sign(signing_key, _claims(), kid="k2"))


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    verifier: JWTVerifier, signing_key: rsa.RSAPrivateKey
) -> None:
    # The classic confusion attack: the attacker HMACs with the (public) PEM, hoping the server
    # verifies HS256 with the same bytes it would use as an RSA key.
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}).encode())}." + _b64(
        json.dumps(_claims()).encode()
    )
    mac = hmac.HMAC(pem, hashes.SHA256())
    mac.update(signing_input.encode())
    with pytest.raises(Unauthenticated, match="algorithm 'HS256'"):
        await verifier.verify(f"{signing_input}.{_b64(mac.finalize())}")


async def test_shared_secret_accepts_only_hmac(monkeypatch: pytest.MonkeyPatch, signing_key: rsa.RSAPrivateKey) -> None:
    monkeypatch.setenv("STRATA_TEST_JWT_SECRET", "s" * 48)
    verifier = JWTVerifier(JWTSpec(secret_env="STRATA_TEST_JWT_SECRET", algorithms=["HS256"]))
    plain = _claims(aud=None, iss=None)  # this verifier asks for neither
    good = jwt.encode(plain, "s" * 48, algorithm="HS256")
    assert (await verifier.verify(good)).tenant == "acme"
    with pytest.raises(Unauthenticated, match="Signature"):
        await verifier.verify(jwt.encode(plain, "t" * 48, algorithm="HS256"))
    with pytest.raises(Unauthenticated, match="algorithm 'RS256'"):
        await verifier.verify(_sign(signing_key, plain))


def test_bad_jwt_specs_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        JWTSpec()
    with pytest.raises(ValueError, match="'none' is never accepted"):
        JWTSpec(jwks_file="x.json", algorithms=["none", "RS256"])
    monkeypatch.delenv("STRATA_TEST_JWT_MISSING", raising=False)
    with pytest.raises(SpecError, match="STRATA_TEST_JWT_MISSING"):
        JWTVerifier(JWTSpec(secret_env="STRATA_TEST_JWT_MISSING"))


class _JWKSHandler(http.server.BaseHTTPRequestHandler):
    document = b"{}"
    fetches = 0

    def do_GET(self) -> None:
        type(self).fetches += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return


async def test_jwks_url_is_fetched_at_start_and_an_unknown_kid_refused(signing_key: rsa.RSAPrivateKey) -> None:
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    _JWKSHandler.document = json.dumps({"keys": [{**jwk, "kid": "url-key"}]}).encode()
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _JWKSHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
        verifier = JWTVerifier(JWTSpec(jwks_url=url, issuer=ISSUER, audience=AUDIENCE))
        await verifier.start()
        assert (await verifier.verify(_sign(signing_key, _claims(), kid="url-key"))).tenant == "acme"
        with pytest.raises(Unauthenticated, match="kid"):
            await verifier.verify(_sign(signing_key, _claims(), kid="rotated-away"))
        with pytest.raises(Unauthenticated, match="kid"):
            await verifier.verify(_sign(signing_key, _claims(), kid="rotated-away"))
        assert _JWKSHandler.fetches == 1  # unknown kids may not make Strata hammer the issuer
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class _FlakyJWKSHandler(_JWKSHandler):
    up = False

    def do_GET(self) -> None:
        if self.up:
            super().do_GET()  # counts the fetch
            return
        type(self).fetches += 1
        self.send_response(502)
        self.end_headers()


async def test_an_unreachable_jwks_answers_503_with_retry_after_and_recovers(
    signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("strata.access.jwt.JWKS_RETRY_S", 0.3)
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    _FlakyJWKSHandler.document = json.dumps({"keys": [{**jwk, "kid": "k"}]}).encode()
    _FlakyJWKSHandler.fetches, _FlakyJWKSHandler.up = 0, False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyJWKSHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        verifier = JWTVerifier(JWTSpec(jwks_url=f"http://127.0.0.1:{httpd.server_address[1]}/", issuer=ISSUER,
                                       audience=AUDIENCE))  # fmt: skip
        await verifier.start()  # the issuer is down: the gateway starts anyway
        token = _sign(signing_key, _claims(), kid="k")
        for _ in range(20):  # a burst while it is down: every one 503, one fetch for all of them
            with pytest.raises(DependencyUnavailable) as refused:
                await verifier.verify(token)
        assert refused.value.status == 503
        assert int(refused.value.headers()["Retry-After"]) >= 1
        assert _FlakyJWKSHandler.fetches == 1
        _FlakyJWKSHandler.up = True
        await asyncio.sleep(0.35)
        assert (await verifier.verify(token)).tenant == "acme"  # back by itself
        assert _FlakyJWKSHandler.fetches == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
