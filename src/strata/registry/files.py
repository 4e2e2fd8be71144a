"""A model folder as content-addressed blobs: the manifest of file hashes, its signature, and the way
back to a local folder whose every file is checked against the manifest before a model loads from it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from strata.data.artifacts import ArtifactStore
from strata.errors import InvalidRequest, SpecError

log = logging.getLogger(__name__)

REGISTRY_TENANT = "strata-registry"  # the artifact store's namespace for model files (never a client tenant)
CACHE_ENV = "STRATA_REGISTRY_CACHE"
DEFAULT_CACHE = ".strata/registry-cache"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # relative, '/'-separated
    sha256: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


def signature_of(manifest: list[ManifestEntry]) -> str:
    """SHA-256 over the canonical manifest: one digest that changes if any file, name or size does."""
    canonical = orjson.dumps([e.as_dict() for e in sorted(manifest, key=lambda e: e.path)], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def entries_from(rows: list[dict[str, Any]]) -> list[ManifestEntry]:
    return [ManifestEntry(str(r["path"]), str(r["sha256"]), int(r["bytes"])) for r in rows]


def _safe_relative(path: str) -> PurePosixPath:
    """A manifest path that stays inside the folder (the manifest is data: never trust it blindly)."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise SpecError(f"registry manifest names an unsafe path '{path}'")
    return relative


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` (symbolic links followed), sorted; hidden files left out."""
    if not folder.is_dir():
        raise InvalidRequest(f"path: {folder} is not a folder", param="path")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise InvalidRequest(f"path: {folder} holds no files", param="path")
    return files


async def store_folder(store: ArtifactStore, folder: Path) -> list[ManifestEntry]:
    """Store each file of ``folder`` by its SHA-256 (a file already stored is not written again)."""
    manifest = []
    for file in model_files(folder):
        # One file at a time in memory: the largest file of a model bounds what this holds.
        stored = await store.put(REGISTRY_TENANT, await asyncio.to_thread(file.read_bytes))
        manifest.append(ManifestEntry(file.relative_to(folder).as_posix(), stored.sha256, stored.bytes))
    return manifest


@dataclass(frozen=True, slots=True)
class Materialised:
    folder: Path
    fetched: int  # files copied from the store (missing from the cache)
    repaired: int  # cached files whose bytes no longer matched the manifest, fetched again


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)).expanduser()


async def materialise(
    store: ArtifactStore, manifest: list[ManifestEntry], signature: str, root: Path | None = None
) -> Materialised:
    """A local folder holding exactly the manifest's bytes: ``<root>/<signature>/``. Every cached file is
    hashed against the manifest on every call, so a file edited or truncated in the cache is detected and
    fetched again; a blob from the store whose bytes do not match its name is refused."""
    if signature_of(manifest) != signature:
        raise SpecError("registry version: its manifest does not match its signature (edited in the database?)")
    folder = (root or cache_root()) / signature
    fetched = repaired = 0
    for entry in manifest:
        target = folder / _safe_relative(entry.path)
        if target.is_file():
            if await asyncio.to_thread(_sha256_file, target) == entry.sha256:
                continue
            log.warning("registry cache: %s does not match its manifest hash; fetching it again", target)
            repaired += 1
        else:
            fetched += 1
        data = await store.get(REGISTRY_TENANT, entry.sha256)
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise SpecError(f"registry: the stored blob for '{entry.path}' does not match its hash")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.tmp-{secrets.token_hex(6)}")
        await asyncio.to_thread(_publish, temporary, target, data)  # appears whole or not at all
    return Materialised(folder, fetched, repaired)


def _publish(temporary: Path, target: Path, data: bytes) -> None:
    temporary.write_bytes(data)
    temporary.replace(target)  # appears whole or not at all
