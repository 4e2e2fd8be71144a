"""The response cache's keys (never across tenants, allow-lists, templates or models) and the kept
answer's encoding."""

from strata.gateway.cache_key import CacheScope, exact_key, model_fingerprint, semantic_query
from strata.gateway.cached_answer import decode, encode
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


def test_a_kept_answer_decodes_to_what_was_encoded() -> None:
    choices = [
        Choice(0, "Paris.", "stop", 3, [TokenLogprob("Paris", -0.1, (("Paris", -0.1), ("Rome", -2.5)))]),
        Choice(1, "It is Paris", "length", 4),
    ]
    answer = decode(encode(choices, 12))
    assert answer.prompt_tokens == 12
    assert answer.completion_tokens == 7
    assert answer.choices == choices
