"""HTTPS served by `strata serve` itself, with mutual TLS: certificates from a CA the test makes; the
official openai client (keep-alive, streaming) over it; plain HTTP and certificate-less clients
turned away cleanly while the server goes on serving."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from strata.testing import ServerProcess
from strata.testing.certificates import TestAuthority

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHAT = "strata-chat-tiny"


def _spec(folder: Path, ca: TestAuthority) -> Path:
    server = ca.server()
    spec = {
        "name": "tls",
        "gateway": {
            "tls": {
                "certificate_file": str(server.certificate_file),
                "key_file": str(server.key_file),
                "client_ca_file": str(ca.ca_file),
            }
        },
        "models": [{"name": CHAT, "kind": "hf-causal-lm", "path": f"builtin:{CHAT}"}],
        "deployments": [{"name": "chat", "model": CHAT, "batching": {"max_batch_size": 8}}],
        "routes": [{"name": CHAT, "deployment": "chat"}],
    }
    path = folder / "tls.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _client_context(ca: TestAuthority, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    if with_certificate:
        issued = ca.client("alice")
        context.load_cert_chain(str(issued.certificate_file), str(issued.key_file))
    return context


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, TestAuthority]]:
    folder = tmp_path_factory.mktemp("tls")
    ca = TestAuthority(folder)
    with ServerProcess(_spec(folder, ca), client_tls=_client_context(ca, with_certificate=True)) as server:
        yield server, ca


def test_the_openai_client_streams_over_mutual_tls(tls_server: tuple[ServerProcess, TestAuthority]) -> None:
    server, _ = tls_server
    assert server.url.startswith("https://")
    with httpx.Client(verify=server.verify) as http_client:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, http_client=http_client,
                               max_retries=0)  # fmt: skip
        reply = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert reply.choices[0].message.content is not None
        stream = client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True
        )
        chunks = list(stream)
        assert len(chunks) >= 2
        assert chunks[-1].choices[0].finish_reason is not None


def test_requests_share_one_kept_alive_tls_connection(tls_server: tuple[ServerProcess, TestAuthority]) -> None:
    server, _ = tls_server
    assert isinstance(server.verify, ssl.SSLContext)
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.verify, timeout=30)
    try:
        for _ in range(3):
            connection.request("GET", "/v1/models", headers=server.headers)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            assert connection.sock is not None  # the server kept the connection open
        peer = connection.sock.getpeercert()
        assert peer is not None
        assert ("commonName", "localhost") in peer["subject"][0]
    finally:
        connection.close()


def test_plain_http_and_clients_without_a_certificate_are_turned_away(
    tls_server: tuple[ServerProcess, TestAuthority],
) -> None:
    server, ca = tls_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = plain.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/")  # no HTTP is served in clear: the handshake failed, the socket closed
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", verify=_client_context(ca, with_certificate=False), timeout=5)
    assert httpx.get(f"{server.url}/healthz", verify=server.verify, timeout=5).status_code == 200  # still serving
    assert "Traceback" not in server.logs()
