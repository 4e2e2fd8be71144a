"""The response cache's keys: who may share an answer, and what request it answers.

An answer is shared only by requests that agree on everything that could change it or who may see
it: the tenant, the key's model allow-list (two keys of one tenant with different allow-lists never
share), the route, the version and the model it serves (its fingerprint), the prompt template id and
version, the endpoint, and the request as the model sees it (messages or prompt after templates,
retrieval and input guards; every sampling parameter; the structured-output schema).

A key is ``route|version|fingerprint|digest``: the digest hides the rest, and the readable prefix
lets every answer of one served model be purged at once when it is replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from strata.serving.generation import GenerationRequest

Prompt = tuple[str, int]  # a prompt template's (id, version)


@dataclass(frozen=True, slots=True)
class CacheScope:
    """What a request shares an answer with: the caller's side and the served model's side."""

    tenant: str
    models: frozenset[str] | None  # the key's allow-list; None: every model
    route: str
    version: str
    fingerprint: str  # the deployment and model that serve ``version`` (model_fingerprint)
    prompt: Prompt | None = None

    @property
    def prefix(self) -> str:
        return f"{self.route}|{self.version}|{self.fingerprint}|"


def model_fingerprint(deployment: str, model_spec_json: bytes) -> str:
    """A short name for 'this deployment serving this model': it changes when a reload or a registry
    promotion swaps the model, so the old answers stop matching."""
    return hashlib.blake2b(deployment.encode() + b"\0" + model_spec_json, digest_size=8).hexdigest()


def exact_key(scope: CacheScope, endpoint: str, request: GenerationRequest) -> str:
    return scope.prefix + _digest(scope, endpoint, request.messages, request.prompt, request)


@dataclass(frozen=True, slots=True)
class SemanticQuery:
    """Semantic lookups compare ``text`` (the last user message, or a completion's prompt) with the
    answers kept in ``partition``: requests equal in everything else."""

    partition: str
    text: str


def semantic_query(scope: CacheScope, endpoint: str, request: GenerationRequest) -> SemanticQuery | None:
    if request.messages is None:
        text = request.prompt or ""
        partition = _digest(scope, endpoint, None, None, request)
        return SemanticQuery(scope.prefix + partition, text) if text else None
    for position in range(len(request.messages) - 1, -1, -1):
        message = request.messages[position]
        if message.get("role") == "user":
            blank: dict[str, str | None] = {"role": "user", "content": None}
            others: list[Mapping[str, str | None]] = [*request.messages[:position], blank]
            others += request.messages[position + 1 :]
            return SemanticQuery(scope.prefix + _digest(scope, endpoint, others, None, request), message["content"])
    return None


def _digest(
    scope: CacheScope,
    endpoint: str,
    messages: Sequence[Mapping[str, str | None]] | None,
    prompt: str | None,
    request: GenerationRequest,
) -> str:
    # orjson serialises the frozen dataclasses (SamplingParams, JsonConstraint) field by field.
    material = orjson.dumps(
        (
            scope.tenant,
            None if scope.models is None else sorted(scope.models),
            scope.prompt,
            endpoint,
            messages,
            prompt,
            request.params,
            request.constraint,
        )
    )
    return hashlib.blake2b(material, digest_size=16).hexdigest()
