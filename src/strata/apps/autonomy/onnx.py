"""The autonomy denoiser on ONNX Runtime: its export, and the DDIM loop that calls the session.

Only the denoiser (z, t, cond) -> v is a graph; the few-step loop around it stays here, in numpy,
so that a session serves any step count and int8 quantization touches only the network's weights.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from strata.apps.autonomy.conditioning import COND_DIM
from strata.apps.autonomy.model import CONFIG_FILE, PATH_DIM, WEIGHTS_FILE, TrajectoryModel
from strata.models.onnx_export import export_graph, quantize_int8, write_manifest
from strata.models.onnx_runtime import OnnxManifest, OnnxModel

TASK = "autonomy-denoiser"
INPUTS = ("z", "t", "cond")
OUTPUTS = ("v",)

Float32 = NDArray[np.float32]


def is_denoiser_folder(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file() and "residual_scale_m" in (folder / CONFIG_FILE).read_text()


def export_denoiser(folder: Path, out: Path, *, int8: bool) -> OnnxManifest:
    """The shipped denoiser as model.onnx; its config (and the fp16 weights, 160 KB) are copied beside it,
    so the export folder also loads as a TrajectoryModel for whatever the graph does not run."""
    model = TrajectoryModel.load(folder)
    example = (torch.zeros(4, PATH_DIM), torch.full((4,), 0.5), torch.zeros(4, COND_DIM))
    export_graph(model.denoiser, example, INPUTS, OUTPUTS, out, free_length=False)
    if int8:
        quantize_int8(out, keep_input_layer=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(folder / name, out / name)
    return write_manifest(out, TASK, folder, INPUTS, OUTPUTS)


class OnnxSampler:
    """The DDIM sampler of ``strata.apps.autonomy.model.sample`` with the session as its network:
    cosine schedule, v-prediction, deterministic updates from pure noise to the clean residual."""

    def __init__(self, model: OnnxModel) -> None:
        model.expect(TASK)
        self.model = model

    def __call__(self, noise: Float32, cond: Float32, steps: int) -> Float32:
        z, ones = noise, np.ones(len(noise), dtype=np.float32)
        for i in range(steps, 0, -1):
            t = ones * np.float32(i / steps)
            v = self.model.run({"z": z, "t": t, "cond": cond})[0]
            alpha, sigma = _alpha_sigma(t)
            x_hat = alpha * z - sigma * v
            if i == 1:
                return x_hat
            alpha_s, sigma_s = _alpha_sigma(ones * np.float32((i - 1) / steps))
            eps = (z - alpha * x_hat) / sigma  # the noise the estimate implies; DDIM keeps it
            z = (alpha_s * x_hat + sigma_s * eps).astype(np.float32, copy=False)
        return z  # steps == 0: the noise itself, as sample() gives


def _alpha_sigma(t: Float32) -> tuple[Float32, Float32]:
    angle = (0.5 * math.pi * t)[:, None]
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
