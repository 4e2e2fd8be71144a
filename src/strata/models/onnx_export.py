"""`strata export onnx`: a torch module into model.onnx (+ model.int8.onnx) and a manifest.

torch's dynamo exporter (torch.export, then onnxscript) writes the graph: the TorchScript exporter
traces transformers' attention-mask shortcuts as constants and gets BERT wrong by whole units.
int8 is onnxruntime's dynamic quantization: weights per output channel to int8 once, activations
per call; per-channel is what keeps MiniLM's embeddings within 0.99 cosine of fp32 (per-tensor: 0.96).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModel, AutoTokenizer

from strata.models.onnx_runtime import MODEL_FILES, OnnxManifest, sha256_of

OPSET = 18
EMBEDDING_TASK = "embedding"


def export_graph(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    out: Path,
    *,
    free_length: bool,
) -> None:
    """Write ``module`` to out/model.onnx with every input's first axis (the batch) free, and with
    ``free_length`` the second too (token sequences)."""
    out.mkdir(parents=True, exist_ok=True)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    axes = {0: batch, 1: length} if free_length else {0: batch}
    shapes = tuple(axes for _ in example)
    # Its op registry logs one line per torchvision op it cannot find; torchvision is not ours to need.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The exporter warns about axis names it merges and ops it decomposes: nothing a user can act on.
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            example,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
        assert program is not None  # dynamo=True always returns the program
        program.save(str(out / MODEL_FILES["fp32"]), external_data=False)


def quantize_int8(out: Path, *, keep_input_layer: bool = False) -> None:
    """out/model.onnx -> out/model.int8.onnx: int8 weights per output channel, dynamic activations.

    ``keep_input_layer`` leaves the first matrix product in float: activations are quantized per tensor,
    with one scale, so an input that concatenates unlike quantities (noise ~1, speeds ~10 m/s, time
    features) loses the small ones. For the autonomy denoiser it is the difference between ADE +2.8%
    and +0.5% against fp32 (docs/guides/engines.md)."""
    # The quantizer logs a suggestion to pre-process on the root logger at WARNING; the graph is already
    # optimised by the exporter, and measured accuracy is the same either way (docs/guides/engines.md).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    source, target = (out / MODEL_FILES["fp32"]).resolve(), (out / MODEL_FILES["int8"]).resolve()
    excluded = _first_matmul(source) if keep_input_layer else []
    # The quantizer's shape inference leaves files in the working directory (sym_shape_infer_temp.onnx
    # and a <uuid>.data of the whole model's weights): it runs in a scratch directory of its own.
    try:
        with tempfile.TemporaryDirectory(prefix="strata-quantize-") as scratch, contextlib.chdir(scratch):
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=excluded)
    finally:
        root.setLevel(level)


def _first_matmul(path: Path) -> list[str]:
    """The name the quantizer gives the graph's first matrix product (nodes are in topological order);
    it rewrites a Gemm as NAME_MatMul plus an Add before it quantizes."""
    for node in onnx.load(str(path)).graph.node:
        if node.op_type == "Gemm":
            return [f"{node.name}_MatMul"]
        if node.op_type == "MatMul":
            return [node.name]
    return []


def write_manifest(out: Path, task: str, source: Path, inputs: Sequence[str], outputs: Sequence[str]) -> OnnxManifest:
    files = {path.name: sha256_of(path) for path in sorted(out.iterdir()) if path.suffix == ".onnx"}
    manifest = OnnxManifest(task, str(source), OPSET, list(inputs), list(outputs), files)
    manifest.write(out)
    return manifest


class _Encoder(torch.nn.Module):
    """The encoder with positional inputs and one output, the shape an ONNX graph takes."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return hidden


def export_embedding(folder: Path, out: Path, *, int8: bool) -> OnnxManifest:
    """A transformers encoder (kind hf-embedding's folder) with its tokenizer and config beside it, so the
    export folder alone serves as ``kind: onnx``. Pooling stays outside the graph, as in the torch backend."""
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    names = ["input_ids", "attention_mask"] + (
        ["token_type_ids"] if "token_type_ids" in tokenizer.model_input_names else []
    )
    encoded = tokenizer(["Strata exports its encoder.", "A second sentence."], padding=True, return_tensors="pt")
    export_graph(
        _Encoder(model), tuple(encoded[name] for name in names), names, ["last_hidden_state"], out, free_length=True
    )
    if int8:
        quantize_int8(out)
    tokenizer.save_pretrained(out)
    model.config.save_pretrained(out)
    return write_manifest(out, EMBEDDING_TASK, folder, names, ["last_hidden_state"])
