"""The seam to ONNX Runtime: a folder written by ``strata export onnx`` loaded into one session.

All onnxruntime calls of the serving path live here. A session is built once per replica, with the
providers in priority order and threads sized for the batcher's model: one call at a time per
replica, so intra-op threads are the replica's cores and inter-op parallelism is off.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from strata.errors import SpecError
from strata.spec.onnx import OnnxRuntimeOptions, Provider

MANIFEST_FILE = "onnx-manifest.json"
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
PROVIDER_NAMES: dict[Provider, str] = {
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEFAULT_ORDER: tuple[Provider, ...] = ("cuda", "tensorrt", "cpu")


@dataclass(frozen=True)
class OnnxManifest:
    """What an export folder holds; written by the exporter, read before any session is built."""

    task: str  # "embedding" or "autonomy-denoiser"
    source: str  # the folder exported
    opset: int
    inputs: list[str]
    outputs: list[str]
    files: dict[str, str]  # file name -> sha256

    @classmethod
    def read(cls, folder: Path) -> OnnxManifest:
        path = folder / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(**{key: raw[key] for key in ("task", "source", "opset", "inputs", "outputs", "files")})
        except FileNotFoundError:
            reason = f"no {MANIFEST_FILE}"
        except (OSError, ValueError, KeyError, TypeError) as error:
            reason = f"{MANIFEST_FILE} unreadable: {error!r}"
        raise SpecError(
            f"path: {folder} is not an ONNX export ({reason}); write one with `strata export onnx`", param="path"
        )

    def write(self, folder: Path) -> None:
        body = {
            "task": self.task,
            "source": self.source,
            "opset": self.opset,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "files": self.files,
            "onnxruntime": ort.__version__,
        }
        (folder / MANIFEST_FILE).write_text(json.dumps(body, indent=2) + "\n")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def choose_providers(wanted: list[Provider] | None) -> list[str]:
    """The providers a session gets, in priority order: the ones asked for (each must be offered by this
    onnxruntime build), or cuda, tensorrt, cpu as far as offered."""
    available = set(ort.get_available_providers())
    if wanted is None:
        return [PROVIDER_NAMES[p] for p in DEFAULT_ORDER if PROVIDER_NAMES[p] in available]
    missing = [p for p in wanted if PROVIDER_NAMES[p] not in available]
    if missing:
        raise SpecError(
            f"options.providers: {missing} not offered by this onnxruntime build (offered: {sorted(available)})",
            param="options.providers",
        )
    return [PROVIDER_NAMES[p] for p in wanted]


class OnnxModel:
    """One exported model in one session: ``run`` maps named numpy inputs to the outputs in order."""

    def __init__(self, folder: Path, options: OnnxRuntimeOptions, cpus: float = 1.0) -> None:
        self.folder = folder
        self.manifest = OnnxManifest.read(folder)
        self.precision = options.precision
        path = folder / MODEL_FILES[options.precision]
        if not path.is_file():
            hint = " (export with --int8)" if options.precision == "int8" else ""
            raise SpecError(
                f"options.precision: {options.precision} needs {path}, which does not exist{hint}",
                param="options.precision",
            )
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads or max(1, int(cpus))
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Between batches the pool's threads would spin-wait for work, burning the cores other replicas
        # and the event loop need; a batch call is long enough that waking them costs nothing measurable.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), session_options, providers=choose_providers(options.providers))
        self.providers: list[str] = self.session.get_providers()
        self.input_names = [node.name for node in self.session.get_inputs()]

    def expect(self, task: str) -> None:
        if self.manifest.task != task:
            raise SpecError(f"path: {self.folder} holds an exported {self.manifest.task}, not a {task}", param="path")

    def run(self, inputs: dict[str, NDArray[Any]]) -> list[NDArray[np.float32]]:
        fed = {name: inputs[name] for name in self.input_names}  # an export may drop an unused input
        outputs: list[NDArray[np.float32]] = self.session.run(None, fed)
        return outputs
