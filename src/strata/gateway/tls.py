"""``gateway.tls``: the options that make uvicorn serve HTTPS (and mutual TLS) itself.

The files are checked here, by loading them into an SSL context once, so a wrong path, a key that
does not match its certificate or a CA file that is not PEM stops `strata serve` with the field
named (exit 2) instead of a traceback from inside uvicorn. Protocol floor: TLS 1.2 (Python's default
context). A client speaking plain HTTP to the port fails its handshake and is disconnected; the
server logs nothing for it and goes on serving.
"""

from __future__ import annotations

import ssl
from typing import Any

from strata.errors import SpecError
from strata.spec.models import TLSSpec


def server_context(tls: TLSSpec) -> ssl.SSLContext:
    """The context the options below describe, built to check them (and used by tests)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.certificate_file, tls.key_file)
    except (OSError, ssl.SSLError) as error:
        raise SpecError(f"gateway.tls.certificate_file / key_file: cannot be loaded: {error}") from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise SpecError(f"gateway.tls.client_ca_file: cannot be loaded: {error}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def uvicorn_tls_options(tls: TLSSpec | None) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``; empty for plain HTTP. Raises SpecError naming a bad file."""
    if tls is None:
        return {}
    server_context(tls)
    options: dict[str, Any] = {"ssl_certfile": tls.certificate_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file is not None:
        options |= {"ssl_ca_certs": tls.client_ca_file, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options
