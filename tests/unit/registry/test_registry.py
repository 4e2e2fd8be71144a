"""The model registry over SQLite and PostgreSQL: content-addressed push, stages, promote and rollback,
the cache check that finds a tampered file, and the audit trail every action leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.access import audit
from strata.access.audit import AuditEvent
from strata.data.artifacts import ArtifactStore
from strata.errors import Conflict, InvalidRequest, NotFound, SpecError
from strata.registry.files import REGISTRY_TENANT
from strata.registry.reference import Reference
from strata.registry.service import ModelRegistry
from strata.store import Database


def _folder(root: Path, weights: bytes = b"weights-v1") -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "toy"}')
    (root / "sub").mkdir()
    (root / "sub" / "weights.bin").write_bytes(weights)
    return root


def _overwrite(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def _blob_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


@pytest.fixture
def registry(database: Database, tmp_path: Path) -> ModelRegistry:
    async def sink(event: AuditEvent) -> None:
        await audit.append(database, [event])

    return ModelRegistry(database, ArtifactStore(str(tmp_path / "artifacts")), sink)


async def test_push_numbers_versions_and_stores_each_file_once(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model")
    first = await registry.push("toy", folder, task="embed", metrics={"recall": 0.9}, source_hash="abc", actor="t")
    second = await registry.push("toy", folder, task="embed")
    assert (first["version"], second["version"]) == (1, 2)
    assert first["signature"] == second["signature"]  # same bytes, same manifest
    assert first["metrics"] == {"recall": 0.9}
    assert first["source_hash"] == "abc"
    assert [f["path"] for f in first["files"]] == ["config.json", "sub/weights.bin"]
    assert _blob_count(tmp_path / "artifacts") == 2  # pushed twice, stored once
    changed = _folder(tmp_path / "model-2", weights=b"weights-v2")
    third = await registry.push("toy", changed, task="embed")
    assert third["version"] == 3
    assert third["signature"] != first["signature"]
    assert _blob_count(tmp_path / "artifacts") == 3  # only the changed file is new
    models = await registry.list_models()
    assert models == [{"object": "registry.model", "name": "toy", "versions": 3, "latest": 3, "stages": {}}]


async def test_push_refuses_bad_input(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model")
    with pytest.raises(InvalidRequest) as bad_name:
        await registry.push("Bad Name", folder, task="embed")
    assert bad_name.value.param == "name"
    with pytest.raises(InvalidRequest) as bad_task:
        await registry.push("toy", folder, task="fly")
    assert bad_task.value.param == "task"
    with pytest.raises(InvalidRequest) as no_folder:
        await registry.push("toy", tmp_path / "missing", task="embed")
    assert no_folder.value.param == "path"


async def test_promote_and_rollback_move_the_stage(registry: ModelRegistry, tmp_path: Path, database: Database) -> None:
    folder = _folder(tmp_path / "model")
    for _ in range(3):
        await registry.push("toy", folder, task="embed")
    assert (await registry.promote("toy", 1, "production", actor="ops"))["version"] == 1
    promoted = await registry.promote("toy", 2, "production")
    assert (promoted["version"], promoted["previous"]) == (2, 1)
    await registry.promote("toy", 3, "production")
    assert [v["stages"] for v in await registry.list_versions("toy")] == [[], [], ["production"]]
    back = await registry.rollback("toy", "production")
    assert (back["version"], back["history"]) == (2, [1])
    assert (await registry.rollback("toy", "production"))["version"] == 1
    with pytest.raises(Conflict):
        await registry.rollback("toy", "production")  # nothing before version 1
    with pytest.raises(Conflict):
        await registry.promote("toy", 1, "production")  # already there
    with pytest.raises(NotFound):
        await registry.promote("toy", 9, "production")
    with pytest.raises(InvalidRequest) as bad_stage:
        await registry.promote("toy", 1, "prod")
    assert bad_stage.value.param == "stage"
    assert (await registry.resolve(Reference.parse("registry:toy@production"))).version == 1
    assert (await registry.resolve(Reference.parse("registry:toy@3"))).version == 3
    with pytest.raises(SpecError):
        await registry.resolve(Reference.parse("registry:toy@staging"))
    # Every action is on the trail, and the chain still verifies.
    actions = [row["action"] for row in await audit.recent(database)]
    assert actions.count("registry.push") == 3
    assert actions.count("registry.promote") == 3
    assert actions.count("registry.rollback") == 2
    verdict = await audit.verify(database)
    assert verdict.ok, verdict.problems


@pytest.mark.parametrize("text", ["toy@1", "registry:toy", "registry:Toy@1", "registry:toy@prod", "registry:toy@"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(SpecError):
        Reference.parse(text)


async def test_materialise_detects_a_tampered_cached_file(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model")
    await registry.push("toy", folder, task="embed")
    cache = tmp_path / "cache"
    reference = Reference.parse("registry:toy@1")
    _, first = await registry.materialise(reference, cache)
    assert (first.fetched, first.repaired) == (2, 0)
    assert (first.folder / "sub" / "weights.bin").read_bytes() == b"weights-v1"
    (first.folder / "sub" / "weights.bin").write_bytes(b"weights-v1 tampered")
    _, again = await registry.materialise(reference, cache)
    assert (again.fetched, again.repaired) == (0, 1)
    assert (again.folder / "sub" / "weights.bin").read_bytes() == b"weights-v1"  # restored from the store
    _, clean = await registry.materialise(reference, cache)
    assert (clean.fetched, clean.repaired) == (0, 0)


async def test_a_corrupt_stored_blob_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model")
    pushed = await registry.push("toy", folder, task="embed")
    weights = next(f for f in pushed["files"] if f["path"] == "sub/weights.bin")
    blob = registry.artifacts._path(REGISTRY_TENANT, weights["sha256"])
    _overwrite(blob, b"not the weights")
    with pytest.raises(SpecError, match="does not match its hash"):
        await registry.materialise(Reference.parse("registry:toy@1"), tmp_path / "cache")
