"""The request Strata sends upstream, and the flags a managed engine gets."""

from pathlib import Path

import pytest

from strata.errors import InvalidRequest
from strata.runtime.upstream import request_body
from strata.runtime.vllm_engine import engine_flags, engine_python
from strata.serving.generation import GenerationRequest
from strata.serving.sampling import SamplingParams
from strata.spec.engines import EngineSpec


def test_chat_body_is_streamed_with_usage() -> None:
    request = GenerationRequest(
        params=SamplingParams(max_tokens=5, temperature=0.0, stop=("\n",), seed=3),
        messages=({"role": "user", "content": "hi"},),
    )
    assert request_body("gpt-x", request) == {
        "model": "gpt-x",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "top_p": 1.0,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stop": ["\n"],
        "seed": 3,
    }


def test_prompt_body_leaves_out_what_was_not_asked() -> None:
    body = request_body("m", GenerationRequest(params=SamplingParams(ignore_eos=True), prompt="Once"))
    assert body["prompt"] == "Once"
    assert body["ignore_eos"] is True
    assert not {"max_tokens", "stop", "seed", "messages"} & set(body)


def test_engine_flags() -> None:
    flags = engine_flags({"dtype": "float32", "enforce_eager": True, "trust_remote_code": False, "max_model_len": 512})
    assert flags == ["--dtype", "float32", "--enforce-eager", "--max-model-len", "512"]


def test_engine_python_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATA_VLLM_PYTHON", raising=False)
    with pytest.raises(InvalidRequest, match="make vllm-venv") as caught:
        engine_python(EngineSpec())
    assert caught.value.param == "engine.python"
    with pytest.raises(InvalidRequest, match="does not exist"):
        engine_python(EngineSpec(python=str(tmp_path / "missing")))
    monkeypatch.setenv("STRATA_VLLM_PYTHON", "/bin/sh")
    assert engine_python(EngineSpec()) == "/bin/sh"
