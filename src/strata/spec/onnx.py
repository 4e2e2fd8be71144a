"""Spec of ``kind: onnx`` models: which exported file a replica loads and where its session runs.

These keys live in the model's ``options`` beside the backend's own (``max_length``, ``normalize``
for embeddings; the factory's keyword arguments when ``entrypoint`` is set). They are checked with
the spec, so a typo fails ``strata validate`` instead of a replica's load.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Precision = Literal["fp32", "int8"]
Provider = Literal["cuda", "tensorrt", "cpu"]

RUNTIME_KEYS = ("precision", "providers", "intra_op_threads")


class OnnxRuntimeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: Precision = Field(
        default="fp32",
        description="fp32: model.onnx as exported; int8: model.int8.onnx (dynamic int8 quantization, "
        "`strata export onnx --int8`).",
    )
    providers: list[Provider] | None = Field(
        default=None,
        min_length=1,
        description="Execution providers in priority order. Unset: cuda, tensorrt, cpu, each one only when this "
        "onnxruntime build offers it. Name tensorrt first to let TensorRT take the graph (its engine is built "
        "when the replica loads, which can take minutes).",
    )
    intra_op_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads one model call may use. Unset: the deployment's resources.cpus (at least 1): the "
        "batcher runs one call at a time per replica, and replicas, not threads, share the cores.",
    )


def split_onnx_options(options: dict[str, Any]) -> tuple[OnnxRuntimeOptions, dict[str, Any]]:
    """The runtime's own options, checked, and the rest (the backend's or the factory's).

    ValueError names the offending key as ``options.KEY`` (the spec loader prefixes the model)."""
    runtime = {key: options[key] for key in RUNTIME_KEYS if key in options}
    rest = {key: value for key, value in options.items() if key not in RUNTIME_KEYS}
    try:
        return OnnxRuntimeOptions.model_validate(runtime), rest
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"])
            problems.append(f"options.{where}: {item['msg']}")
        raise ValueError("; ".join(problems)) from None
