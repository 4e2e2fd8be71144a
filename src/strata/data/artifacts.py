"""The artifact store: content-addressed, tenant-scoped blobs behind fsspec (a local folder by default).

Names are made here, never taken from input: ``<root>/<sha256(tenant)[:32]>/<sha[:2]>/<sha>``.
Writing the same bytes twice is a no-op, so a retried or resumed write is naturally idempotent,
and one tenant can neither name nor read another's artifacts.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from strata.errors import SpecError

ARTIFACT_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    sha256: str
    bytes: int


class ArtifactNotFound(LookupError):
    """No artifact with this id for this tenant (or not an artifact id at all)."""


class ArtifactStore:
    """``art = await ArtifactStore("memory://a").put("acme", b"..."); await store.get("acme", art.sha256)``"""

    def __init__(self, url: str) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as error:
            raise SpecError(f"store.artifacts_url: cannot open '{url}': {error}") from None
        self.root = root.rstrip("/")
        self.url = url
        self._local = isinstance(self.fs, LocalFileSystem)

    def _path(self, tenant: str, sha256: str) -> str:
        if not ARTIFACT_ID.match(sha256):
            raise ArtifactNotFound(sha256)
        tenant_dir = hashlib.sha256(tenant.encode()).hexdigest()[:32]
        return f"{self.root}/{tenant_dir}/{sha256[:2]}/{sha256}"

    async def put(self, tenant: str, data: bytes) -> StoredArtifact:
        sha = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self._path(tenant, sha), data)
        return StoredArtifact(sha, len(data))

    def _write(self, path: str, data: bytes) -> None:
        if self.fs.exists(path):
            return  # same name, same bytes: content addressing makes the second write a no-op
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if not self._local:
            self.fs.pipe_file(path, data)  # object stores publish a whole object at once
            return
        # A local file appears whole or not at all: a crash mid-write leaves only a temporary file.
        temporary = f"{path}.tmp-{secrets.token_hex(6)}"
        self.fs.pipe_file(temporary, data)
        self.fs.mv(temporary, path)

    async def get(self, tenant: str, sha256: str) -> bytes:
        path = self._path(tenant, sha256)
        try:
            data: bytes = await asyncio.to_thread(self.fs.cat_file, path)
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None
        return data

    async def exists(self, tenant: str, sha256: str) -> bool:
        try:
            path = self._path(tenant, sha256)
        except ArtifactNotFound:
            return False
        return bool(await asyncio.to_thread(self.fs.exists, path))
