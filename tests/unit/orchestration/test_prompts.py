"""A prompt template version: checked when created, its variables bound with errors naming each one."""

from __future__ import annotations

from typing import Any

import pytest

from strata.errors import InvalidRequest
from strata.orchestration.prompts import CompiledPrompt, compile_prompt
from strata.protocol.prompts import PromptMessage, PromptVariable


def _compiled(variables: dict[str, dict[str, Any]], *contents: str) -> CompiledPrompt:
    messages = [PromptMessage(role="system" if i == 0 else "user", content=c) for i, c in enumerate(contents)]
    declared = {name: PromptVariable.model_validate(spec) for name, spec in variables.items()}
    return compile_prompt("support", 3, messages, declared)


VARIABLES = {
    "product": {"type": "string"},
    "tone": {"type": "string", "default": "friendly"},
    "limit": {"type": "integer", "required": False},
    "score": {"type": "number", "default": 0.5},
    "vip": {"type": "boolean", "default": False},
    "tags": {"type": "array", "default": []},
    "user": {"type": "object", "required": True},
}
TEMPLATE = (
    "You support {{ product }} in a {{ tone }} tone.{% if vip %} VIP.{% endif %}",
    "{{ user.name }} ({{ tags|join(',') }}, {{ score }}, {{ limit }}): help",
)


def test_variables_are_bound_with_defaults_and_rendered_as_messages() -> None:
    prompt = _compiled(VARIABLES, *TEMPLATE)
    bound = prompt.bind({"product": "Strata", "user": {"name": "Ann"}, "tags": ["a", "b"], "score": 2})
    assert bound == {"product": "Strata", "tone": "friendly", "limit": None, "score": 2, "vip": False,
                     "tags": ["a", "b"], "user": {"name": "Ann"}}  # fmt: skip
    assert prompt.render(bound) == [
        {"role": "system", "content": "You support Strata in a friendly tone."},
        {"role": "user", "content": "Ann (a,b, 2, None): help"},
    ]
    assert not prompt.uses_context


@pytest.mark.parametrize(
    ("given", "param", "message"),
    [
        ({"user": {}}, "prompt.variables.product", "needs the variable 'product'"),
        ({"product": "x"}, "prompt.variables.user", "needs the variable 'user'"),
        ({"product": 5, "user": {}}, "prompt.variables.product", "must be of type string, got integer"),
        ({"product": "x", "user": {}, "limit": True}, "prompt.variables.limit", "type integer, got boolean"),
        ({"product": "x", "user": {}, "limit": 1.5}, "prompt.variables.limit", "type integer, got number"),
        ({"product": "x", "user": {}, "score": "1"}, "prompt.variables.score", "type number, got string"),
        ({"product": "x", "user": [], "tags": []}, "prompt.variables.user", "type object, got array"),
        ({"product": "x", "user": {}, "tags": {}}, "prompt.variables.tags", "type array, got object"),
        ({"product": "x", "user": {}, "vip": "yes"}, "prompt.variables.vip", "type boolean, got string"),
        ({"product": "x", "user": {}, "colour": "red"}, "prompt.variables.colour", "declares no variable"),
        ({"product": None, "user": {}}, "prompt.variables.product", "got null"),
    ],
)
def test_bad_variables_are_named(given: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        _compiled(VARIABLES, *TEMPLATE).bind(given)
    assert caught.value.param == param
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("variables", "contents", "param", "message"),
    [
        ({}, ("Hi {{ name }}",), "messages[0].content", "undeclared variables: name"),
        ({"a": {"type": "string"}}, ("{{ a }}", "{% for x in %}"), "messages[1].content", "syntax error"),
        ({}, ("{{ 'x'|center(5) }}",), "messages[0].content", "No filter named 'center'"),
        ({}, ("{% include 'x' %}",), "messages[0].content", "cannot import"),
        ({"context": {"type": "string"}}, ("{{ context }}",), "variables.context", "filled in by retrieval"),
        ({"n": {"type": "integer", "default": "3"}}, ("{{ n }}",), "variables.n.default", "type integer"),
    ],
)
def test_a_version_is_checked_when_created(
    variables: dict[str, dict[str, Any]], contents: tuple[str, ...], param: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        _compiled(variables, *contents)
    assert caught.value.param == param


def test_retrieved_sources_are_placed_by_a_template_that_names_them() -> None:
    prompt = _compiled({"q": {"type": "string"}}, "Sources:\n{% for c in chunks %}<{{ c.number }}> {{ c.text }}\n"
                       "{% endfor %}", "{{ q }}")  # fmt: skip
    assert prompt.uses_context
    chunks = [{"number": 1, "text": "alpha"}, {"number": 2, "text": "beta"}]
    rendered = prompt.render(prompt.bind({"q": "why?"}), context="[1] alpha", chunks=chunks)
    assert rendered[0]["content"] == "Sources:\n<1> alpha\n<2> beta\n"


def test_a_failing_render_is_a_400_naming_the_prompt() -> None:
    prompt = _compiled({"n": {"type": "integer"}}, "{{ 'x' * n }}")
    with pytest.raises(InvalidRequest, match="refused by the sandbox") as caught:
        prompt.render(prompt.bind({"n": 10**9}))
    assert caught.value.param == "prompt"
    with pytest.raises(InvalidRequest, match="failed to render"):
        _compiled({"n": {"type": "object"}}, "{{ n.missing.deeper }}").render({"n": {}})
