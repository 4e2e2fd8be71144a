"""The artifact store: content-addressed, tenant-scoped, names never taken from input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from strata.data import ArtifactStore
from strata.data.artifacts import ArtifactNotFound
from strata.errors import SpecError


@pytest.mark.parametrize("scheme", ["local", "memory"])
async def test_content_addressed_and_tenant_scoped(scheme: str, tmp_path: Path) -> None:
    url = str(tmp_path / "artifacts") if scheme == "local" else f"memory://strata-test-{tmp_path.name}"
    store = ArtifactStore(url)
    first = await store.put("acme", b"hello")
    assert first.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert first.bytes == 5
    assert await store.put("acme", b"hello") == first  # the second write of the same bytes is a no-op
    assert await store.get("acme", first.sha256) == b"hello"
    assert not await store.exists("globex", first.sha256)
    with pytest.raises(ArtifactNotFound):
        await store.get("globex", first.sha256)  # another tenant cannot read it, even knowing the id


async def test_ids_that_are_not_digests_never_reach_the_file_system(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    (tmp_path / "secret").write_text("x")
    for bad in ["../secret", "/etc/passwd", "a" * 63, "A" * 64]:
        with pytest.raises(ArtifactNotFound):
            await store.get("acme", bad)
    if (tmp_path / "artifacts").exists():
        assert not list((tmp_path / "artifacts").rglob("*.tmp-*"))


def test_an_unknown_scheme_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"store.artifacts_url: cannot open 'nosuch://x'"):
        ArtifactStore("nosuch://x")
