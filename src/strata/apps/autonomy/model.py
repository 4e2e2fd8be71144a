"""The trajectory diffusion model: a 4-layer conditional denoiser and its DDIM sampler.

Continuous-time diffusion with the cosine schedule (alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2))
and v-prediction, which stays well-posed down to the 1-2 step samplers progressive distillation
produces. The model denoises a path's *residual* from the constant-velocity path, scaled by its
training-set spread, so the network only learns what the kinematics do not already say.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file
from torch import nn

from strata.apps.autonomy.conditioning import COND_DIM, HORIZON, constant_velocity

PATH_DIM = 2 * HORIZON
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

ResidualSampler = Callable[[NDArray[np.float32], NDArray[np.float32], int], NDArray[np.float32]]
"""(noise, cond, steps) -> scaled residual paths: another runtime's sampler (ONNX Runtime's)."""


@dataclass(frozen=True)
class DiffusionConfig:
    hidden: int = 128
    layers: int = 4
    time_features: int = 16
    sampling_steps: int = 2
    """Steps of the shipped (distilled) sampler."""
    residual_scale_m: tuple[float, ...] = (1.0,) * PATH_DIM
    """Per coordinate spread of the residual from the constant-velocity path, metres."""


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


class Denoiser(nn.Module):
    """Predicts v from the noisy residual z_t, the time t and the conditioning; 4 residual layers."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.frequencies: torch.Tensor
        self.register_buffer(
            "frequencies", torch.exp(torch.linspace(0.0, math.log(100.0), config.time_features // 2)), persistent=False
        )
        self.embed = nn.Linear(PATH_DIM + COND_DIM + config.time_features, config.hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(config.hidden) for _ in range(config.layers))
        self.hidden = nn.ModuleList(nn.Linear(config.hidden, config.hidden) for _ in range(config.layers))
        self.out = nn.Linear(config.hidden, PATH_DIM)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.frequencies[None, :]
        h = nn.functional.silu(self.embed(torch.cat([z, cond, torch.sin(angles), torch.cos(angles)], dim=1)))
        for norm, layer in zip(self.norms, self.hidden, strict=True):
            h = h + nn.functional.silu(layer(norm(h)))
        out: torch.Tensor = self.out(h)
        return out

    def predict_x(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        alpha, sigma = alpha_sigma(t)
        v: torch.Tensor = self(z, t, cond)
        return alpha[:, None] * z - sigma[:, None] * v


def ddim_step(x_hat: torch.Tensor, z: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The deterministic DDIM update from time t to s given the model's clean estimate."""
    alpha_t, sigma_t = alpha_sigma(t)
    alpha_s, sigma_s = alpha_sigma(s)
    eps = (z - alpha_t[:, None] * x_hat) / sigma_t[:, None]
    return alpha_s[:, None] * x_hat + sigma_s[:, None] * eps


@torch.inference_mode()
def sample(denoiser: Denoiser, cond: torch.Tensor, steps: int, generator: torch.Generator | None) -> torch.Tensor:
    """Scaled residual paths, one per row of ``cond``, with ``steps`` DDIM steps from pure noise."""
    z = torch.randn(cond.shape[0], PATH_DIM, generator=generator)
    for i in range(steps, 0, -1):
        t = torch.full((cond.shape[0],), i / steps)
        x_hat = denoiser.predict_x(z, t, cond)
        z = x_hat if i == 1 else ddim_step(x_hat, z, t, torch.full_like(t, (i - 1) / steps))
    return z


class _Sampler(nn.Module):
    """The whole few-step sampler as one module, so that it can be traced into one graph."""

    def __init__(self, denoiser: Denoiser, steps: int) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.steps = steps

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(cond[:, 0])  # a tensor op, not a Python shape: traced batch sizes stay free
        for i in range(self.steps, 0, -1):
            t = ones * (i / self.steps)
            x_hat = self.denoiser.predict_x(z, t, cond)
            z = x_hat if i == 1 else ddim_step(x_hat, z, t, ones * ((i - 1) / self.steps))
        return z


class TrajectoryModel:
    """Loaded weights plus the path arithmetic around the denoiser (numpy in, numpy out)."""

    def __init__(self, denoiser: Denoiser, config: DiffusionConfig) -> None:
        self.denoiser = denoiser.eval()
        self.config = config
        self._scale = torch.tensor(config.residual_scale_m, dtype=torch.float32)
        self._traced: torch.jit.ScriptModule | None = None
        self.sampler: ResidualSampler | None = None
        """When set, every call samples with it instead of the torch module (from the same noise)."""

    def trace(self) -> None:
        """Trace the shipped sampler into one TorchScript graph. A call then gives up the GIL once,
        not once per operation: beside a busy event loop each give-up can cost a switch interval."""
        example = (torch.zeros(2, PATH_DIM), torch.zeros(2, COND_DIM))
        # TorchScript is deprecated in favour of torch.compile/export, but neither gives one GIL-free
        # call on CPU without a compiler toolchain; the warning would only repeat that.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sampler = _Sampler(self.denoiser, self.config.sampling_steps)
            self._traced = torch.jit.trace(sampler, example, check_trace=False)  # type: ignore[no-untyped-call]

    @classmethod
    def load(cls, folder: Path) -> TrajectoryModel:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = DiffusionConfig(**{**raw, "residual_scale_m": tuple(raw["residual_scale_m"])})
        denoiser = Denoiser(config)
        denoiser.load_state_dict({k: v.float() for k, v in load_file(folder / WEIGHTS_FILE).items()})
        return cls(denoiser, config)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # float16 on disk halves the committed weights; they are widened back to float32 on load.
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.denoiser.state_dict().items()}
        save_file(state, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    def paths(
        self,
        cond: NDArray[np.float64],
        speed: NDArray[np.float64],
        k: int,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> NDArray[np.float64]:
        """``k`` sampled paths per vehicle in its local frame: (n, k, HORIZON, 2)."""
        n = len(cond)
        cond_t = torch.from_numpy(np.repeat(cond, k, axis=0).astype(np.float32))
        if self.sampler is not None:
            noise = torch.randn(len(cond_t), PATH_DIM, generator=generator)
            sampled = self.sampler(noise.numpy(), cond_t.numpy(), steps or self.config.sampling_steps)
            residual = torch.from_numpy(sampled) * self._scale
        elif self._traced is not None and steps in (None, self.config.sampling_steps):
            # Unoptimised execution: the profiling executor would re-specialise the graph for every new
            # batch size, a stall of its own each time.
            with torch.inference_mode(), torch.jit.optimized_execution(False):  # type: ignore[attr-defined]
                noise = torch.randn(len(cond_t), PATH_DIM, generator=generator)
                residual = self._traced(noise, cond_t) * self._scale
        else:
            residual = sample(self.denoiser, cond_t, steps or self.config.sampling_steps, generator) * self._scale
        reference = constant_velocity(np.repeat(speed, k))
        paths: NDArray[np.float64] = reference + residual.numpy().reshape(n * k, HORIZON, 2).astype(np.float64)
        return paths.reshape(n, k, HORIZON, 2)
