"""What a route is, and how a request finds its route.

A route is declared once (``Endpoint``): method, path template, the scope a caller needs, its typed
request and response models, its handler. The route table (``gateway.routes``) lists them all;
dispatch, access checks, metric labels and the OpenAPI document are all read from it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel
from starlette.responses import Response

if TYPE_CHECKING:
    from strata.gateway.call import Call

Handler = Callable[["Call"], Awaitable[Response]]


class Scope(StrEnum):
    """What a caller's key must hold. ``admin`` holds every scope."""

    OPEN = "open"  # no key at all (probes)
    ANY = "any"  # any valid key (the caller's own usage)
    INFER = "infer"
    JOBS = "jobs"
    ADMIN = "admin"


_PARAM = re.compile(r"\{(\w+)(:path)?\}")


def from_response(pointer: str) -> str:
    """A link value: a field of the linking route's JSON response (a JSON pointer below the body)."""
    return f"$response.body#/{pointer}"


def from_request_path(name: str) -> str:
    """A link value: a path parameter of the linking route's own request."""
    return f"$request.path.{name}"


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: what one route's successful response lets a client call next (create a key, then
    get or revoke it). Values are OpenAPI runtime expressions (``from_response``, ``from_request_path``);
    a contract fuzzer follows links to chain real calls on real objects."""

    target: Handler  # the handler of the route called next (its operation)
    params: dict[str, str] = field(default_factory=dict)  # its path parameters
    body: dict[str, str] = field(default_factory=dict)  # fields of its JSON body


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # a template: /v1/jobs/{job_id}; {name:path} may hold slashes
    handler: Handler
    scope: Scope
    summary: str
    tag: str
    request: type[BaseModel] | None = None  # the JSON body, validated by the handler through Call.parse
    response: type[BaseModel] | None = None  # the 2xx JSON body (None: described by ``response_media``)
    query: type[BaseModel] | None = None  # query parameters, each a field
    status: int = 200
    also_ok: tuple[int, ...] = ()  # other success statuses with the same body (e.g. an idempotent replay)
    response_media: str = "application/json"
    # The JSON data of each server-sent event. With a JSON ``response`` too, the stream is OpenAI's
    # ``stream: true`` alternative (chunks, an in-band error once the 200 is sent, then ``[DONE]``);
    # without, the route answers only the stream (``response_media`` text/event-stream).
    events: type[BaseModel] | None = None
    multipart: bool = False  # the body is multipart/form-data (file uploads)
    metered: bool = False  # inference work: usage, tokens and the audit row are recorded for it
    model_param: str | None = None  # the path parameter that names a model (checked against the key's models)
    errors: tuple[int, ...] = ()  # error statuses this route documents beyond the common ones
    links: tuple[Link, ...] = ()  # the routes its successful response leads to
    path_params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_params", tuple(m.group(1) for m in _PARAM.finditer(self.path)))

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


@dataclass(frozen=True, slots=True)
class Match:
    endpoint: Endpoint
    params: dict[str, str]


class RouteTable:
    """Finds the endpoint for (method, path): a dict lookup for fixed paths, then templates in order."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.endpoints: list[Endpoint] = []
        self._fixed: dict[str, dict[str, Endpoint]] = {}
        self._templates: list[tuple[re.Pattern[str], dict[str, Endpoint]]] = []
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: Endpoint) -> None:
        if any(e.method == endpoint.method and e.path == endpoint.path for e in self.endpoints):
            raise ValueError(f"route {endpoint.method} {endpoint.path} is declared twice")
        self.endpoints.append(endpoint)
        if not endpoint.path_params:
            self._fixed.setdefault(endpoint.path, {})[endpoint.method] = endpoint
            return
        pattern = _compile(endpoint.path)
        for known, methods in self._templates:
            if known.pattern == pattern.pattern:
                methods[endpoint.method] = endpoint
                return
        self._templates.append((pattern, {endpoint.method: endpoint}))

    def match(self, method: str, path: str) -> Match | set[str] | None:
        """The match; or the set of methods the path allows (a 405); or None (a 404).

        A path belongs to the first template that matches it (templates are declared most specific
        first): ``/v1/models/m/predict`` is model m's predict resource, so a GET of it is a 405 that
        allows POST, never the card of a model named ``m/predict``. A method is never looked for in a
        later, less specific template, so the Allow header lists exactly what the resource serves.
        """
        methods = self._fixed.get(path)
        if methods is None:
            for pattern, by_method in self._templates:
                found = pattern.fullmatch(path)
                if found is not None:
                    endpoint = by_method.get(method)
                    return Match(endpoint, found.groupdict()) if endpoint is not None else set(by_method)
            return None
        endpoint = methods.get(method)
        return Match(endpoint, {}) if endpoint is not None else set(methods)


def _compile(template: str) -> re.Pattern[str]:
    parts, position = [], 0
    for found in _PARAM.finditer(template):
        parts.append(re.escape(template[position : found.start()]))
        # A {name:path} parameter takes slashes; a plain one takes one non-empty segment.
        parts.append(f"(?P<{found.group(1)}>{'.+' if found.group(2) else '[^/]+'})")
        position = found.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))
