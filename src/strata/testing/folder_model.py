"""A Python model whose behaviour lives in its folder, so that registry versions of it differ by their
files: ``model.json`` holds ``{"label": "...", "fail": false}``. Each answer names the label (which
version served); with ``fail`` every batch raises, as a broken version would.

Spec: ``{kind: python, entrypoint: "strata.testing.folder_model:FolderModel", path: "registry:NAME@production"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from strata.errors import SpecError

MANIFEST = "model.json"


class FolderModel:
    def __init__(self, path: str) -> None:
        manifest = Path(path) / MANIFEST
        try:
            settings = orjson.loads(manifest.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise SpecError(f"path: {manifest} is not a readable JSON file: {error}", param="path") from None
        self.label = str(settings.get("label", ""))
        self.fail = bool(settings.get("fail", False))

    def predict_batch(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        if self.fail:
            raise RuntimeError(f"model {self.label!r} is built to fail")
        return [{"label": self.label, "input": item} for item in inputs]

    def warmup(self) -> None:
        return None  # a failing version must still load: it fails requests, as a bad release does
