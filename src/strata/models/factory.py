"""Builds the backend object a model spec describes. Runs in the replica, off the event loop."""

from __future__ import annotations

from strata.models.base import BatchModel
from strata.models.hf_causal_lm import HFCausalLM
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.onnx_embedding import OnnxEmbeddingModel
from strata.models.onnx_runtime import OnnxModel
from strata.models.paths import resolve_model_path
from strata.models.python_model import build_python_model
from strata.spec import ModelSpec
from strata.spec.onnx import split_onnx_options


def build_batch_model(spec: ModelSpec, device: str, cpus: float = 1.0) -> BatchModel:
    """A model for dynamic batching (kinds hf-embedding, python and onnx). ``cpus``: the deployment's
    cores per replica, which size an ONNX session's threads unless its options say otherwise."""
    if spec.kind == "hf-embedding":
        assert spec.path is not None  # guaranteed by ModelSpec validation
        return HFEmbeddingModel.from_options(resolve_model_path(spec.path), device, spec.options)
    if spec.kind == "python":
        assert spec.entrypoint is not None
        folder = None if spec.path is None else resolve_model_path(spec.path, marker=None)
        return build_python_model(spec.entrypoint, spec.options, folder)
    if spec.kind == "onnx":
        assert spec.path is not None
        runtime, rest = split_onnx_options(spec.options)  # already checked with the spec
        model = OnnxModel(resolve_model_path(spec.path), runtime, cpus)
        if spec.entrypoint is None:
            return OnnxEmbeddingModel.from_options(model, rest)
        return build_python_model(spec.entrypoint, {**rest, "onnx": model})
    raise ValueError(f"model '{spec.name}' of kind {spec.kind} is not served by dynamic batching")


def build_decode_engine(spec: ModelSpec, device: str) -> HFCausalLM:
    """A causal LM for continuous batching (kind hf-causal-lm)."""
    if spec.kind in ("openai", "vllm", "llama-cpp"):
        # Their replicas drive another engine (strata.runtime.upstream, .llamacpp_replica), not a decode engine.
        raise ValueError(f"model '{spec.name}' of kind {spec.kind} is served by the local runtime only")
    if spec.kind != "hf-causal-lm":
        raise ValueError(f"model '{spec.name}' of kind {spec.kind} cannot generate text")
    assert spec.path is not None
    return HFCausalLM.from_options(resolve_model_path(spec.path), device, spec.options)
