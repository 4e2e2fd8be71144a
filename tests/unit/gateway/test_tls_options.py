"""gateway.tls: the uvicorn options, and bad files named before the server starts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from strata.errors import SpecError
from strata.gateway.tls import uvicorn_tls_options
from strata.spec.models import TLSSpec
from strata.testing.certificates import TestAuthority


def test_plain_http_has_no_options() -> None:
    assert uvicorn_tls_options(None) == {}


def test_server_tls_and_mutual_tls(tmp_path: Path) -> None:
    ca = TestAuthority(tmp_path)
    server = ca.server()
    tls = TLSSpec(certificate_file=str(server.certificate_file), key_file=str(server.key_file))
    assert uvicorn_tls_options(tls) == {"ssl_certfile": tls.certificate_file, "ssl_keyfile": tls.key_file}
    mutual = uvicorn_tls_options(tls.model_copy(update={"client_ca_file": str(ca.ca_file)}))
    assert mutual["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert mutual["ssl_ca_certs"] == str(ca.ca_file)


def test_bad_files_are_named(tmp_path: Path) -> None:
    ca = TestAuthority(tmp_path)
    server, other = ca.server(), ca.server("other")
    with pytest.raises(SpecError, match="certificate_file / key_file"):  # a key of another certificate
        uvicorn_tls_options(TLSSpec(certificate_file=str(server.certificate_file), key_file=str(other.key_file)))
    with pytest.raises(SpecError, match="certificate_file / key_file"):
        uvicorn_tls_options(TLSSpec(certificate_file=str(tmp_path / "missing.crt"), key_file=str(server.key_file)))
    with pytest.raises(SpecError, match="client_ca_file"):
        uvicorn_tls_options(TLSSpec(certificate_file=str(server.certificate_file), key_file=str(server.key_file),
                                    client_ca_file=str(server.key_file)))  # fmt: skip
