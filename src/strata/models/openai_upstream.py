"""The OpenAI wire protocol as an upstream client reads it: the streamed chunks, and what each
upstream failure means to Strata's resilience layer. Pure functions, no I/O: the replica
(``strata.runtime.upstream``) builds the request and owns the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from strata.errors import InvalidRequest, ModelFailed, Overloaded, ReplicaUnavailable, StrataError

DONE = "[DONE]"


# One generated token as the upstream reported it: (token, logprob, ((alternative, logprob), ...)).
Logprob = tuple[str, float, tuple[tuple[str, float], ...]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one streamed chunk adds to one choice: text, a finish reason, the tokens' log-probabilities,
    or the usage (in its own final chunk, which has no choice)."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    index: int = 0  # the choice (n > 1)
    logprobs: tuple[Logprob, ...] = ()


def parse_line(line: str) -> list[Chunk]:
    """One SSE line of the upstream's stream: a chunk per choice it carries, none for lines that
    carry nothing (comments, blank lines, ``[DONE]``). An in-band error (a stream that failed after
    it began) raises ModelFailed."""
    if not line.startswith("data:"):
        return []
    data = line[5:].strip()
    if not data or data == DONE:
        return []
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ModelFailed(f"upstream sent a chunk that is not JSON: {data[:200]!r}") from None
    if not isinstance(payload, dict):
        raise ModelFailed(f"upstream sent a chunk that is not a JSON object: {data[:200]!r}")
    if "error" in payload:
        raise ModelFailed(f"upstream failed during the stream: {_error_message(payload)}")
    return _chunks(payload)


def _chunks(payload: dict[str, Any]) -> list[Chunk]:
    usage = payload.get("usage")
    prompt_tokens = completion_tokens = None
    if isinstance(usage, dict):
        prompt_tokens, completion_tokens = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    chunks = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        # Chat chunks carry delta.content; text completions carry text.
        content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        index = choice.get("index", 0)
        chunks.append(
            Chunk(
                content if isinstance(content, str) else "",
                choice.get("finish_reason") or None,
                prompt_tokens,
                completion_tokens,
                index if isinstance(index, int) else 0,
                _logprobs(choice.get("logprobs")),
            )
        )
    if not chunks and (prompt_tokens is not None or completion_tokens is not None):
        chunks.append(Chunk(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
    return chunks


def _logprobs(value: object) -> tuple[Logprob, ...]:
    """Chat's ``{"content": [{token, logprob, top_logprobs}]}`` or the legacy completions shape
    ``{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}]}``, as one representation."""
    if not isinstance(value, dict):
        return ()
    content = value.get("content")
    if isinstance(content, list):
        return tuple(
            (str(entry.get("token", "")), float(entry.get("logprob", 0.0)), _alternatives(entry.get("top_logprobs")))
            for entry in content
            if isinstance(entry, dict)
        )
    tokens, chosen, tops = value.get("tokens"), value.get("token_logprobs"), value.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(chosen, list):
        return ()
    tops = tops if isinstance(tops, list) else [None] * len(tokens)
    return tuple(
        (str(token), float(logprob or 0.0), _alternatives(top))
        for token, logprob, top in zip(tokens, chosen, tops, strict=False)
    )


def _alternatives(value: object) -> tuple[tuple[str, float], ...]:
    if isinstance(value, list):  # chat: [{token, logprob}]
        return tuple((str(e.get("token", "")), float(e.get("logprob", 0.0))) for e in value if isinstance(e, dict))
    if isinstance(value, dict):  # completions: {token: logprob}
        return tuple((str(token), float(logprob)) for token, logprob in value.items())
    return ()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def status_error(status: int, body: bytes, retry_after: str | None) -> StrataError:
    """What an upstream's error status means here. The request's own faults (400, 413, 422) reach the
    client as a 400 naming the upstream's field; everything else is the deployment's fault and may be
    retried on another replica or served by a fallback route (bad key, unknown model, overload, outage)."""
    message = _error_message(_json_or_none(body)) or body[:300].decode(errors="replace")
    if status in (400, 413, 422):
        param = _error_param(_json_or_none(body))
        return InvalidRequest(f"upstream rejected the request: {message}", param=param)
    if status == 429:
        return Overloaded(f"upstream is rate limiting: {message}", retry_after_s=_seconds(retry_after))
    if status in (401, 403):
        return ModelFailed(f"upstream refused the credentials (HTTP {status}): check the key's environment variable")
    if status in (502, 503, 504):
        return ReplicaUnavailable(f"upstream unavailable (HTTP {status}): {message}")
    return ModelFailed(f"upstream answered HTTP {status}: {message}")


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _error_message(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:500]
    if isinstance(error, str):
        return error[:500]
    if isinstance(payload, dict) and isinstance(payload.get("detail"), str):  # FastAPI's shape
        return str(payload["detail"])[:500]
    return ""


def _error_param(payload: Any) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def _seconds(retry_after: str | None) -> float:
    try:
        return max(0.0, float(retry_after)) if retry_after else 1.0
    except ValueError:  # an HTTP date: not worth parsing, a second is a fair default
        return 1.0
