"""The response cache on the generation path: look an answer up before serving, keep it after.

1. A request that samples (temperature above 0 and no seed) is not cacheable unless its route opts
   in (``cache.nondeterministic``): it is served as usual and counted as ``bypass``.
2. Pick the version that would serve it (the traffic split, as serving would) and build the key
   (cache_key.py): tenant, allow-list, route, version, model fingerprint, template, the request.
3. Exact lookup: the route's in-memory LRU, or Redis when ``store.redis_url`` is set.
4. Semantic mode, on an exact miss: embed the last user message through the named embedding route
   and take the nearest kept answer of the request's partition if similar enough.
5. A miss is served on the version picked in 2; its answer is kept only if that version answered
   (not a fallback) and every choice finished, after the output guards passed it.

A background sweep purges the answers of a version whose model was replaced (reload, registry
promote) or whose traffic weight fell to 0 (a finished rollout); the key already stops them
matching, the purge frees the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from strata.data.cache_store import CacheStore, MemoryStore, RedisStore
from strata.data.semantic_index import SemanticIndex
from strata.errors import StrataError
from strata.gateway.cache_key import CacheScope, Prompt, exact_key, model_fingerprint, semantic_query
from strata.gateway.cached_answer import CachedAnswer, decode, encode
from strata.lifetimes import task_running
from strata.observability.cache_metrics import CacheMetrics, RouteCacheMetrics
from strata.orchestration.embedding import embed
from strata.record import RequestRecord
from strata.serving.generation import Choice, GenerationRequest
from strata.serving.route import RequestContext, Route, Served
from strata.serving.sampling import SamplingParams
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.spec.cache import RouteCacheSpec

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Lookup:
    result: str  # hit | semantic | miss | bypass (the x-strata-cache header says miss for bypass)
    version: str | None = None  # the version picked: a miss is served there
    answer: CachedAnswer | None = None
    key: str | None = None  # a miss: where its answer is kept
    semantic: tuple[str, np.ndarray] | None = None  # a miss: (partition, vector) to index its answer by

    @property
    def header(self) -> str:
        return "miss" if self.result == "bypass" else self.result


BYPASS = Lookup("bypass")


class RouteCache:
    def __init__(
        self, route: Route, spec: RouteCacheSpec, store: CacheStore, server: ModelServer, metrics: RouteCacheMetrics
    ) -> None:
        self.route = route
        self.spec = spec
        self.store = store
        self.memory = store if isinstance(store, MemoryStore) else None  # read without an await
        self.server = server
        self.metrics = metrics
        self.index = SemanticIndex(spec.max_semantic_entries, spec.max_entries) if spec.mode == "semantic" else None
        self._fingerprints: dict[str, tuple[object, str]] = {}  # version -> (the model spec object, fingerprint)
        self._retired: set[str] = set()  # versions at weight 0 whose answers were purged

    def cacheable(self, params: SamplingParams) -> bool:
        return params.greedy or params.seed is not None or self.spec.nondeterministic

    async def lookup(
        self,
        record: RequestRecord,
        endpoint: str,
        request: GenerationRequest,
        context: RequestContext,
        prompt: Prompt | None,
        fresh: bool = False,
    ) -> Lookup:
        """``fresh``: the caller wants the model's answer (Cache-Control: no-cache); it is still kept."""
        results = self.metrics.results
        if not self.cacheable(request.params):
            results["bypass"].inc()
            return BYPASS
        version = self.route.pick_version(context)
        caller = record.caller
        scope = CacheScope(caller.tenant, caller.models, self.route.name, version, self.fingerprint(version), prompt)
        key = exact_key(scope, endpoint, request)
        if fresh:
            results["bypass"].inc()
            return Lookup("bypass", version, key=key)
        data = self.memory.read(key) if self.memory is not None else await self.store.get(key)
        if data is not None:
            results["hit"].inc()
            return Lookup("hit", version, decode(data))
        semantic = None
        if self.index is not None:
            query = semantic_query(scope, endpoint, request)
            vector = None if query is None else await self._embed(query.text, context)
            if query is not None and vector is not None:
                semantic = (query.partition, vector)
                nearest = self.index.nearest(query.partition, vector)
                if nearest is not None and nearest[1] >= self.spec.semantic_threshold:
                    data = await self.store.get(nearest[0])
                    if data is not None:
                        results["semantic"].inc()
                        return Lookup("semantic", version, decode(data))
        results["miss"].inc()
        return Lookup("miss", version, key=key, semantic=semantic)

    def keep(self, lookup: Lookup, served: Served, choices: Sequence[Choice], prompt_tokens: int) -> None:
        """Keep a miss's answer: only what the picked version itself answered, every choice finished."""
        if lookup.key is None or served.route != self.route.name or served.version != lookup.version:
            return
        if not choices or any(choice.finish_reason is None for choice in choices):
            return
        self.store.put(lookup.key, encode(choices, prompt_tokens), self.spec.ttl_s)
        if lookup.semantic is not None and self.index is not None:
            self.index.add(lookup.semantic[0], lookup.semantic[1], lookup.key)
        self.metrics.stores.inc()

    def fingerprint(self, version: str) -> str:
        """The model that serves ``version`` now; a replaced model gets a new one and its old answers go."""
        deployment = self.route.versions[version]
        known = self._fingerprints.get(version)
        if known is not None and known[0] is deployment.model:  # the common case: an identity check
            return known[1]
        fingerprint = model_fingerprint(deployment.name, deployment.model.model_dump_json().encode())
        if known is not None and known[1] != fingerprint:
            self._purge(f"{self.route.name}|{version}|{known[1]}|")
        self._fingerprints[version] = (deployment.model, fingerprint)
        return fingerprint

    def sweep(self) -> None:
        """Purge what can no longer be served: replaced models, versions whose weight fell to 0."""
        for version, weight in self.route.weights.items():
            if weight > 0:
                self._retired.discard(version)
                if version in self._fingerprints:
                    self.fingerprint(version)
            elif version not in self._retired:
                self._retired.add(version)
                self._fingerprints.pop(version, None)
                self._purge(f"{self.route.name}|{version}|")

    def _purge(self, prefix: str) -> None:
        self.store.purge(prefix)
        if self.index is not None:
            self.index.purge(prefix)

    async def _embed(self, text: str, context: RequestContext) -> np.ndarray | None:
        assert self.spec.embedding_route is not None
        try:
            embedded = await embed(self.server, self.spec.embedding_route, [text], context)
        except StrataError as error:  # no embedding (overloaded, failed): an exact-only lookup, never an error
            log.debug("response cache: could not embed for %s: %s", self.route.name, error)
            return None
        vector: np.ndarray = embedded.vectors[0]
        return vector


class ResponseCache:
    """Every cached route's cache, and the store they share when Redis is set."""

    def __init__(self, spec: AppSpec, server: ModelServer, metrics: CacheMetrics) -> None:
        self.metrics = metrics
        redis_url = spec.store.redis_url
        self.redis = (
            RedisStore(redis_url, spec.cache.namespace, spec.cache.redis_timeout_ms / 1000)
            if redis_url is not None and any(r.cache.enabled for r in spec.routes)
            else None
        )
        self.routes: dict[str, RouteCache] = {}
        for route_spec in spec.routes:
            cache = route_spec.cache
            if not cache.enabled:
                continue
            store: CacheStore = self.redis or MemoryStore(cache.max_entries, cache.max_bytes)
            route = server.routes[route_spec.name]
            self.routes[route.name] = RouteCache(route, cache, store, server, metrics.for_route(route.name))

    def refresh_gauges(self) -> None:
        for name, cache in self.routes.items():
            if cache.memory is not None:
                self.metrics.entries.labels(route=name).set(len(cache.memory))
                self.metrics.bytes.labels(route=name).set(cache.memory.bytes)
                self.metrics.evictions.labels(route=name).set(cache.memory.evicted)
        if self.redis is not None:
            self.metrics.errors.set(self.redis.errors)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            async with task_running(self._sweep if self.routes else None, "response-cache-sweep"):
                yield
        finally:
            if self.redis is not None:
                await self.redis.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            for cache in self.routes.values():
                cache.sweep()
