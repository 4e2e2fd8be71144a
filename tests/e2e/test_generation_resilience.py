"""Text generation through the resilience layer: the version header, the client's deadline
(before the first token and during generation), and the batch slot freed when it passes."""

import time

import pytest

from strata.testing import MetricSamples, ServerProcess

pytestmark = pytest.mark.e2e

LONG = {
    "model": "strata-chat-tiny",
    "messages": [{"role": "user", "content": "Tell me a joke."}],
    "max_tokens": 400,
    "ignore_eos": True,
}


def test_chat_reply_names_its_version(default_server: ServerProcess) -> None:
    with default_server.http() as client:
        reply = client.post("/v1/chat/completions", json={**LONG, "max_tokens": 4})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-strata-route"] == "strata-chat-tiny"
    assert reply.headers["x-strata-version"] == "chat"


@pytest.mark.parametrize("stream", [False, True])
def test_deadline_ends_a_long_generation_and_frees_its_slot(default_server: ServerProcess, stream: bool) -> None:
    with default_server.http() as client:
        reply = client.post(
            "/v1/chat/completions", json={**LONG, "stream": stream}, headers={"x-strata-deadline-ms": "150"}
        )
    if reply.status_code == 200:  # the stream began in time: the deadline ends it in-band
        assert stream
        assert "deadline_exceeded" in reply.text
        assert "[DONE]" not in reply.text
    else:
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"]["code"] == "deadline_exceeded"
    deadline = time.monotonic() + 10
    while (
        MetricSamples.scrape(default_server.url, headers=default_server.headers).value(
            "strata_running_sequences", deployment="chat"
        )
        > 0
    ):
        assert time.monotonic() < deadline, "the expired generation kept its batch slot"
        time.sleep(0.05)
