"""Reading an upstream's streamed chunks and what its error statuses mean here."""

import pytest

from strata.errors import InvalidRequest, ModelFailed, Overloaded, ReplicaUnavailable
from strata.models.openai_upstream import Chunk, parse_line, status_error


def test_chat_and_completion_chunks() -> None:
    assert parse_line('data: {"choices":[{"index":0,"delta":{"content":"Par"},"finish_reason":null}]}') == [
        Chunk("Par")
    ]
    assert parse_line('data: {"choices":[{"index":0,"text":"is","finish_reason":"length"}]}') == [Chunk("is", "length")]
    assert parse_line('data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}') == [Chunk()]


def test_each_choice_is_its_own_chunk() -> None:
    line = 'data: {"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}'
    assert parse_line(line) == [Chunk("b", index=1), Chunk("a", index=0)]


def test_logprobs_of_chat_and_of_completions_read_the_same() -> None:
    chat = parse_line(
        'data: {"choices":[{"index":0,"delta":{"content":"Paris"},"logprobs":{"content":[{"token":"Paris",'
        '"logprob":-0.1,"bytes":[80],"top_logprobs":[{"token":"Paris","logprob":-0.1},{"token":"Rome","logprob":-2.5}]}]}}]}'
    )
    legacy = parse_line(
        'data: {"choices":[{"index":0,"text":"Paris","logprobs":{"tokens":["Paris"],"token_logprobs":[-0.1],'
        '"top_logprobs":[{"Paris":-0.1,"Rome":-2.5}],"text_offset":[0]}}]}'
    )
    expected = (("Paris", -0.1, (("Paris", -0.1), ("Rome", -2.5))),)
    assert chat[0].logprobs == legacy[0].logprobs == expected


def test_usage_chunk() -> None:
    line = 'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}'
    assert parse_line(line) == [Chunk(prompt_tokens=12, completion_tokens=7)]


@pytest.mark.parametrize("line", ["", ": keep-alive", "data: [DONE]", "event: ping", "data:"])
def test_lines_without_content(line: str) -> None:
    assert parse_line(line) == []


def test_in_band_error_and_garbage_fail_the_generation() -> None:
    with pytest.raises(ModelFailed, match="out of memory"):
        parse_line('data: {"error":{"message":"out of memory","type":"server_error"}}')
    with pytest.raises(ModelFailed, match="not JSON"):
        parse_line("data: {nope")
    with pytest.raises(ModelFailed, match="not a JSON object"):
        parse_line("data: [1, 2]")


def test_status_meanings() -> None:
    bad = status_error(400, b'{"error":{"message":"max_tokens is too large","param":"max_tokens"}}', None)
    assert isinstance(bad, InvalidRequest)
    assert bad.param == "max_tokens"
    assert "max_tokens is too large" in bad.message
    limited = status_error(429, b'{"error":{"message":"slow down"}}', "7")
    assert isinstance(limited, Overloaded)
    assert limited.retry_after_s == 7.0
    assert status_error(429, b"", "Wed, 21 Oct 2015 07:28:00 GMT").retry_after_s == 1.0  # type: ignore[attr-defined]
    refused = status_error(401, b'{"error":{"message":"Incorrect API key provided: sk-abc"}}', None)
    assert isinstance(refused, ModelFailed)
    assert "sk-abc" not in refused.message
    assert isinstance(status_error(503, b"down", None), ReplicaUnavailable)
    assert isinstance(status_error(500, b'{"detail":"boom"}', None), ModelFailed)
    assert "boom" in status_error(500, b'{"detail":"boom"}', None).message
