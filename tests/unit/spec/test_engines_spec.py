"""Spec of models served by another engine: kind openai needs an upstream, kind vllm a path; keys never in the spec."""

import pytest

from strata.errors import SpecError
from strata.spec import parse_spec


def _app(model: dict[str, object]) -> dict[str, object]:
    return {
        "models": [{"name": "m", **model}],
        "deployments": [{"name": "d", "model": "m"}],
        "routes": [{"name": "r", "deployment": "d"}],
    }


def test_openai_model() -> None:
    spec = parse_spec(_app({"kind": "openai", "upstream": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "KEY"}}))
    model = spec.models[0]
    assert model.task == "generate"
    assert model.upstream is not None
    assert model.upstream.read_timeout_s == 120.0


def test_vllm_model() -> None:
    spec = parse_spec(
        _app({"kind": "vllm", "path": "builtin:strata-chat-tiny", "engine": {"args": ["--dtype", "float32"]}})
    )
    assert spec.models[0].engine is not None
    assert spec.models[0].engine.module == "vllm.entrypoints.openai.api_server"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"kind": "openai"}, r"models\[0\].*needs 'upstream'"),
        ({"kind": "vllm"}, r"models\[0\].*needs 'path'"),
        ({"kind": "openai", "upstream": {"base_url": "127.0.0.1:9"}}, r"models\[0\].upstream.base_url"),
        ({"kind": "openai", "upstream": {"base_url": "http://h/v1", "api_key": "sk-x"}}, r"upstream.api_key"),
        ({"kind": "openai", "upstream": {"base_url": "http://h/v1", "api_key_env": "sk x"}}, r"upstream.api_key_env"),
        (
            {"kind": "hf-causal-lm", "path": "p", "upstream": {"base_url": "http://h/v1"}},
            r"'upstream' is for kind openai",
        ),
        ({"kind": "hf-causal-lm", "path": "p", "engine": {}}, r"'engine' is for kind vllm"),
    ],
)
def test_invalid_engine_models_are_named(model: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_app(model))
