"""Replica metrics endpoints: loopback unless configured; on the node's address only with a token."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from strata.observability.replica_endpoint import LOOPBACK, serve_replica_metrics
from strata.spec.scaling import RaySpec


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("strata_test_batches", "batches", registry=registry).inc(3)
    return registry


def _routable_address() -> str:
    """An address of this machine other machines could reach (the one a default route leaves by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel only picks a source address
        return str(probe.getsockname()[0])


def test_by_default_replica_metrics_listen_on_loopback_only() -> None:
    spec = RaySpec()
    assert spec.replica_metrics_host == "loopback"
    server, url = serve_replica_metrics(_registry(), LOOPBACK, 0, None)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert "strata_test_batches_total 3.0" in httpx.get(url).text
        address = _routable_address()
        if address != LOOPBACK:  # the same port on the machine's own address is closed
            with pytest.raises(httpx.ConnectError):
                httpx.get(url.replace(LOOPBACK, address), timeout=2)
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_guards_the_endpoint() -> None:
    server, url = serve_replica_metrics(_registry(), LOOPBACK, 0, "s3cret-token")
    try:
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        allowed = httpx.get(url, headers={"Authorization": "Bearer s3cret-token"})
        assert allowed.status_code == 200
        assert "strata_test_batches_total 3.0" in allowed.text
    finally:
        server.shutdown()
        server.server_close()


def test_the_node_address_needs_a_token_variable() -> None:
    with pytest.raises(ValidationError, match="replica_metrics_token_env"):
        RaySpec(replica_metrics_host="node")
    assert RaySpec(replica_metrics_host="node", replica_metrics_token_env="STRATA_METRICS_TOKEN")
