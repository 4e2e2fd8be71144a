"""Safe by default: an open gateway may only listen where nobody else can reach it."""

from __future__ import annotations

import ipaddress

from strata.errors import SpecError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name we cannot vouch for


def check_bind(host: str, access_enabled: bool) -> None:
    """Refuse to serve without credentials on an address other machines can reach."""
    if not access_enabled and not is_loopback(host):
        raise SpecError(
            f"gateway.host: refusing to listen on {host} with access.enabled: false - anyone who can reach it "
            "could use it. Enable access control, or bind to 127.0.0.1."
        )
