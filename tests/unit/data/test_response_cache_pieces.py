"""The response cache's pieces: keys that never cross tenants, allow-lists, templates or models;
the bounded memory store; the semantic index; the kept answer's encoding."""

import numpy as np

from strata.data.cache_key import CacheScope, exact_key, model_fingerprint, semantic_query
from strata.data.cache_store import MemoryStore
from strata.data.cached_answer import decode, encode
from strata.data.semantic_index import SemanticIndex
from strata.serving.generation import Choice, GenerationRequest, JsonConstraint, TokenLogprob
from strata.serving.sampling import SamplingParams

CHAT = "chat completions"
SCOPE = CacheScope("acme", None, "chat", "v1", model_fingerprint("chat", b'{"path": "a"}'))


def _request(question: str = "What is Strata?", **params: object) -> GenerationRequest:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": question})
    return GenerationRequest(SamplingParams(temperature=0.0, **params), messages=messages)  # type: ignore[arg-type]


def _scope(**changes: object) -> CacheScope:
    fields = {"tenant": SCOPE.tenant, "models": SCOPE.models, "route": SCOPE.route, "version": SCOPE.version,
              "fingerprint": SCOPE.fingerprint, "prompt": SCOPE.prompt, **changes}  # fmt: skip
    return CacheScope(**fields)  # type: ignore[arg-type]


def test_the_same_request_in_the_same_scope_has_one_key() -> None:
    assert exact_key(SCOPE, CHAT, _request()) == exact_key(_scope(), CHAT, _request())


def test_keys_differ_by_tenant_allow_list_template_model_and_route() -> None:
    base = exact_key(SCOPE, CHAT, _request())
    others = [
        _scope(tenant="globex"),
        _scope(models=frozenset({"chat"})),
        _scope(models=frozenset({"chat", "embed"})),
        _scope(prompt=("greeting", 1)),
        _scope(version="v2"),
        _scope(fingerprint=model_fingerprint("chat", b'{"path": "b"}')),
        _scope(route="chat-b"),
    ]
    keys = {exact_key(scope, CHAT, _request()) for scope in others}
    assert base not in keys
    assert len(keys) == len(others)
    assert exact_key(_scope(prompt=("greeting", 1)), CHAT, _request()) != exact_key(
        _scope(prompt=("greeting", 2)), CHAT, _request()
    )
    # One allow-list is one scope whatever order the key listed its models in.
    assert exact_key(_scope(models=frozenset({"a", "b"})), CHAT, _request()) == exact_key(
        _scope(models=frozenset({"b", "a"})), CHAT, _request()
    )


def test_keys_differ_by_anything_the_model_sees() -> None:
    base = exact_key(SCOPE, CHAT, _request())
    variants = [
        _request("What is Strata, really?"),
        _request(max_tokens=8),
        _request(seed=3),
        _request(n=2),
        _request(logprobs=2),
        _request(stop=("\n",)),
        GenerationRequest(_request().params, messages=_request().messages, constraint=JsonConstraint("{}")),
        GenerationRequest(_request().params, prompt="What is Strata?"),
    ]
    keys = {exact_key(SCOPE, CHAT, request) for request in variants}
    assert base not in keys
    assert len(keys) == len(variants)
    assert exact_key(SCOPE, "completions", _request()) != base


def test_a_key_starts_with_the_served_model_so_its_answers_can_be_purged() -> None:
    assert exact_key(SCOPE, CHAT, _request()).startswith(f"chat|v1|{SCOPE.fingerprint}|")


def test_the_semantic_partition_ignores_only_the_last_user_message() -> None:
    first = semantic_query(SCOPE, CHAT, _request("What is the capital of France?"))
    second = semantic_query(SCOPE, CHAT, _request("Which city is the capital of France?"))
    assert first is not None
    assert second is not None
    assert first.partition == second.partition
    assert second.text == "Which city is the capital of France?"
    other_tenant = semantic_query(_scope(tenant="globex"), CHAT, _request("What is the capital of France?"))
    assert other_tenant is not None
    assert other_tenant.partition != first.partition
    longer = semantic_query(SCOPE, CHAT, _request("What is the capital of France?", max_tokens=99))
    assert longer is not None
    assert longer.partition != first.partition


def test_the_memory_store_expires_entries() -> None:
    now = [100.0]
    store = MemoryStore(max_entries=10, max_bytes=1 << 20)
    store._now = lambda: now[0]
    store.put("a", b"answer", ttl_s=5.0)
    assert store.read("a") == b"answer"
    now[0] = 104.9
    assert store.read("a") == b"answer"
    now[0] = 105.0
    assert store.read("a") is None
    assert len(store) == 0
    assert store.bytes == 0


def test_the_memory_store_is_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    store = MemoryStore(max_entries=2, max_bytes=1 << 20)
    store.put("a", b"1", 60)
    store.put("b", b"2", 60)
    assert store.read("a") == b"1"  # a is now the most recently used
    store.put("c", b"3", 60)
    assert store.read("b") is None
    assert (store.read("a"), store.read("c")) == (b"1", b"3")
    assert store.evicted == 1
    small = MemoryStore(max_entries=100, max_bytes=10)
    small.put("x", b"12345", 60)
    small.put("y", b"12345", 60)
    small.put("z", b"123", 60)
    assert small.read("x") is None
    assert small.bytes == 8
    small.put("huge", b"0" * 11, 60)  # larger than the whole bound: never kept
    assert small.read("huge") is None


def test_the_memory_store_purges_by_prefix() -> None:
    store = MemoryStore(max_entries=10, max_bytes=1 << 20)
    store.put("chat|v1|aaa|1", b"old", 60)
    store.put("chat|v1|bbb|1", b"new", 60)
    store.purge("chat|v1|aaa|")
    assert store.read("chat|v1|aaa|1") is None
    assert store.read("chat|v1|bbb|1") == b"new"


def _unit(values: list[float]) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_the_semantic_index_finds_the_most_similar_and_stays_bounded() -> None:
    index = SemanticIndex(per_partition=2, max_partitions=2)
    index.add("p", _unit([1, 0, 0]), "k1")
    index.add("p", _unit([0, 1, 0]), "k2")
    found = index.nearest("p", _unit([0.9, 0.1, 0]))
    assert found is not None
    assert found[0] == "k1"
    assert found[1] > 0.99
    assert index.nearest("other", _unit([1, 0, 0])) is None
    index.add("p", _unit([0, 0, 1]), "k3")  # the partition is full: k1, the oldest, goes
    found = index.nearest("p", _unit([1, 0, 0]))
    assert found is not None
    assert found[0] != "k1"
    assert len(index) == 2
    index.add("q", _unit([1, 0, 0]), "q1")
    index.add("r", _unit([1, 0, 0]), "r1")  # a third partition: the least recently used (p) goes
    assert index.nearest("p", _unit([0, 0, 1])) is None
    index.purge("q")
    assert index.nearest("q", _unit([1, 0, 0])) is None


def test_a_kept_answer_decodes_to_what_was_encoded() -> None:
    choices = [
        Choice(0, "Paris.", "stop", 3, [TokenLogprob("Paris", -0.1, (("Paris", -0.1), ("Rome", -2.5)))]),
        Choice(1, "It is Paris", "length", 4),
    ]
    answer = decode(encode(choices, 12))
    assert answer.prompt_tokens == 12
    assert answer.completion_tokens == 7
    assert answer.choices == choices
