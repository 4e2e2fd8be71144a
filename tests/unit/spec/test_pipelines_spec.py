"""Pipelines in the app spec: each mistake is refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from strata.errors import SpecError
from strata.spec import parse_spec
from strata.workflows.service import build_pipelines

BASE: dict[str, Any] = {
    "models": [
        {"name": "chat", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"},
        {"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"},
    ],
    "deployments": [{"name": "chat", "model": "chat"}, {"name": "echo", "model": "echo"}],
    "routes": [{"name": "chat", "deployment": "chat"}, {"name": "echo", "deployment": "echo"}],
}


def _spec(*pipelines: dict[str, Any]) -> Any:
    return parse_spec({**BASE, "pipelines": list(pipelines)})


def _problem(*pipelines: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        _spec(*pipelines)
    return caught.value.message


def test_a_valid_dag_and_its_order() -> None:
    spec = _spec({"name": "p", "steps": [
        {"name": "a", "kind": "template", "template": "{{ input }}"},
        {"name": "b", "kind": "generate", "model": "chat", "after": ["a"]},
        {"name": "c", "kind": "postprocess", "after": ["a"], "operations": ["upper"]},
        {"name": "d", "kind": "python", "entrypoint": "json:dumps", "after": ["b", "c"]},
    ]})  # fmt: skip
    pipeline = build_pipelines(spec)["p"]
    assert pipeline.order == ["a", "b", "c", "d"]
    assert pipeline.deps == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert pipeline.needs_models
    assert pipeline.value_for("d", None, {"b": 1, "c": 2}) == {"b": 1, "c": 2}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"name": "a", "kind": "generate", "model": "echo"}],
         "pipelines[0].steps[0].model: 'echo' is not a text-generation route (known: chat)"),
        ([{"name": "a", "kind": "template", "template": "x", "after": ["b"]},
          {"name": "b", "kind": "template", "template": "x", "after": ["a"]}],
         "pipelines[0].steps: the steps' 'after' form a cycle"),
        ([{"name": "a", "kind": "template", "template": "x", "after": ["zz"]}],
         "pipelines[0].steps[0].after: 'zz' is not another step of this pipeline"),
        ([{"name": "a", "kind": "template", "template": "{{ oops"}],
         "pipelines[0].steps[0].template: template error on line 1"),
        ([{"name": "a", "kind": "validate", "json_schema": {"type": "wibble"}}],
         "pipelines[0].steps[0].json_schema: not a valid JSON Schema"),
        ([{"name": "a", "kind": "template", "template": "x"}, {"name": "a", "kind": "template", "template": "y"}],
         "pipelines[0].steps[1].name: duplicate step 'a'"),
        ([{"name": "a", "kind": "python"}], "pipelines[0].steps[0]: a 'python' step needs 'entrypoint'"),
        ([{"name": "a", "kind": "template", "template": "x", "backoff_s": 10, "max_backoff_s": 1}],
         "pipelines[0].steps[0].backoff_s: larger than max_backoff_s"),
        ([{"name": "a", "kind": "generate", "model": "chat", "prompt": "x", "prompt_id": "p"}],
         "pipelines[0].steps[0]: 'prompt_id' names the prompt of a generate step that has no 'prompt'"),
        ([{"name": "a", "kind": "template", "template": "x", "prompt_id": "p"}],
         "pipelines[0].steps[0]: 'prompt_id' names the prompt of a generate step"),
        ([{"name": "a", "kind": "generate", "model": "chat", "prompt_version": 2}],
         "pipelines[0].steps[0]: 'prompt_version' needs 'prompt_id'"),
        ([{"name": "a", "kind": "generate", "model": "chat", "prompt_id": "../x"}],
         "pipelines[0].steps[0].prompt_id"),
    ],
)  # fmt: skip
def test_mistakes_name_the_field(steps: list[dict[str, Any]], expected: str) -> None:
    assert expected in _problem({"name": "p", "steps": steps})


def test_pipeline_names_are_unique_and_not_reserved() -> None:
    step = {"name": "a", "kind": "template", "template": "x"}
    assert "pipelines[1].name: duplicate name 'p'" in _problem(
        {"name": "p", "steps": [step]}, {"name": "p", "steps": [step]}
    )
    assert "pipelines[0].name: 'openai-batch' is reserved" in _problem({"name": "openai-batch", "steps": [step]})
    assert "pipelines[0].output: unknown step 'b'" in _problem({"name": "p", "steps": [step], "output": "b"})


def test_a_custom_step_that_does_not_import_is_named_when_the_app_is_built() -> None:
    spec = _spec({"name": "p", "steps": [{"name": "a", "kind": "python", "entrypoint": "no_such_module:step"}]})
    with pytest.raises(SpecError) as caught:
        build_pipelines(spec)
    assert caught.value.message.startswith("pipelines[0].steps[0].entrypoint: cannot import 'no_such_module'")
