"""A route's cached answers go when the model serving a version is replaced (a registry promotion or
reload swaps ``Deployment.model``) or when a version's traffic falls to 0."""

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from strata.data.cache_store import MemoryStore
from strata.gateway.response_cache import RouteCache
from strata.observability.cache_metrics import CacheMetrics
from strata.spec import ModelSpec
from strata.spec.cache import RouteCacheSpec


@dataclass
class _Deployment:
    """The two fields RouteCache reads of a serving.Deployment."""

    name: str
    model: ModelSpec


@dataclass
class _Route:
    """The part of serving.Route a RouteCache reads: its versions and their weights."""

    name: str
    versions: dict[str, _Deployment]
    weights: dict[str, float] = field(default_factory=dict)


def _model(path: str) -> ModelSpec:
    return ModelSpec(name="tiny", kind="hf-causal-lm", path=path)


def _cache(route: _Route, store: MemoryStore) -> RouteCache:
    metrics = CacheMetrics(CollectorRegistry()).for_route(route.name)
    server: Any = None  # exact mode never embeds
    return RouteCache(route, RouteCacheSpec(mode="exact"), store, server, metrics)  # type: ignore[arg-type]


def test_a_replaced_model_changes_the_fingerprint_and_purges_its_answers() -> None:
    deployment = _Deployment("chat", _model("/models/v1"))
    route = _Route("chat", {"blue": deployment}, {"blue": 100.0})
    store = MemoryStore(100, 1 << 20)
    cache = _cache(route, store)
    old = cache.fingerprint("blue")
    assert cache.fingerprint("blue") == old  # the same model object: the same fingerprint
    store.put(f"chat|blue|{old}|answer", b"kept", 60)
    deployment.model = _model("/models/v2")  # what Deployment.reload does once every replica swapped
    new = cache.fingerprint("blue")
    assert new != old
    assert store.read(f"chat|blue|{old}|answer") is None
    deployment.model = _model("/models/v2")  # a new object, equal content: the answers stay valid
    assert cache.fingerprint("blue") == new


def test_the_sweep_purges_a_replaced_model_and_a_version_without_traffic() -> None:
    blue, green = _Deployment("chat", _model("/models/v1")), _Deployment("chat", _model("/models/v1"))
    route = _Route("chat", {"blue": blue, "green": green}, {"blue": 100.0, "green": 0.0})
    store = MemoryStore(100, 1 << 20)
    cache = _cache(route, store)
    blue_key = f"chat|blue|{cache.fingerprint('blue')}|a"
    green_key = f"chat|green|{cache.fingerprint('green')}|a"
    store.put(blue_key, b"blue", 60)
    store.put(green_key, b"green", 60)
    cache.sweep()
    assert store.read(green_key) is None  # weight 0
    assert store.read(blue_key) == b"blue"
    blue.model = _model("/models/v2")
    cache.sweep()  # no request needed: the sweep notices the new model
    assert store.read(blue_key) is None
