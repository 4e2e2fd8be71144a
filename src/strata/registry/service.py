"""The model registry: push a folder as a numbered version, name versions by stage, promote and roll back.

Versions are immutable (a push never changes an existing one); a stage is a pointer with its history,
so ``rollback`` restores the version the stage named before the last promotion. Every change is an
audit event on the hash-chained trail.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from strata.access.audit import AuditEvent
from strata.data.artifacts import ArtifactStore
from strata.errors import Conflict, InvalidRequest, NotFound, SpecError
from strata.registry.files import Materialised, entries_from, materialise, signature_of, store_folder
from strata.registry.reference import STAGES, TASKS, Reference
from strata.registry.tables import RegistryStage, RegistryVersion
from strata.store import Database

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PUSH_RETRIES = 5  # two pushes of one model racing for the next number: the loser takes the one after

AuditSink = Callable[[AuditEvent], Awaitable[None]]


def check_model_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise InvalidRequest(
            f"name: '{name}' must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidRequest(f"stage: '{stage}' is not one of {', '.join(STAGES)}", param="stage")
    return stage


def version_dict(row: RegistryVersion, stages: list[str]) -> dict[str, Any]:
    return {
        "object": "registry.version",
        "model": row.model,
        "version": row.version,
        "task": row.task,
        "framework": row.framework,
        "metrics": row.metrics,
        "source_hash": row.source_hash,
        "data_hash": row.data_hash,
        "signature": row.signature,
        "bytes": row.bytes,
        "files": row.manifest,
        "stages": stages,
        "created_at": int(row.created_at.timestamp()),
        "created_by": row.created_by,
    }


def stage_dict(row: RegistryStage) -> dict[str, Any]:
    return {
        "object": "registry.stage",
        "model": row.model,
        "stage": row.stage,
        "version": row.version,
        "previous": row.history[-1] if row.history else None,
        "history": row.history,
        "updated_at": int(row.updated_at.timestamp()),
        "updated_by": row.updated_by,
    }


class ModelRegistry:
    def __init__(self, database: Database, artifacts: ArtifactStore, audit: AuditSink) -> None:
        self.database = database
        self.artifacts = artifacts
        self.audit = audit

    async def push(
        self,
        name: str,
        folder: Path,
        *,
        task: str,
        framework: str = "transformers",
        metrics: dict[str, float] | None = None,
        source_hash: str | None = None,
        data_hash: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        check_model_name(name)
        if task not in TASKS:
            raise InvalidRequest(f"task: '{task}' is not one of {', '.join(TASKS)}", param="task")
        manifest = await store_folder(self.artifacts, folder)
        signature = signature_of(manifest)
        for _ in range(_PUSH_RETRIES):
            try:
                async with self.database.session() as session:
                    latest = await session.scalar(
                        select(func.max(RegistryVersion.version)).where(RegistryVersion.model == name)
                    )
                    row = RegistryVersion(
                        model=name,
                        version=(latest or 0) + 1,
                        task=task,
                        framework=framework,
                        metrics=dict(metrics or {}),
                        source_hash=source_hash,
                        data_hash=data_hash,
                        manifest=[e.as_dict() for e in sorted(manifest, key=lambda e: e.path)],
                        signature=signature,
                        bytes=sum(e.bytes for e in manifest),
                        created_at=datetime.now(UTC),
                        created_by=actor,
                    )
                    session.add(row)
                break
            except IntegrityError:
                continue  # another push took this number first
        else:
            raise Conflict(f"could not number a new version of '{name}': too many concurrent pushes")
        await self._audit("registry.push", 201, actor, {"model": name, "version": row.version, "signature": signature})
        return version_dict(row, [])

    async def list_models(self) -> list[dict[str, Any]]:
        async with self.database.session() as session:
            counts = (
                await session.execute(
                    select(RegistryVersion.model, func.count(), func.max(RegistryVersion.version))
                    .group_by(RegistryVersion.model)
                    .order_by(RegistryVersion.model)
                )
            ).all()
            stages = (await session.scalars(select(RegistryStage))).all()
        by_model: dict[str, dict[str, int]] = {}
        for stage in stages:
            by_model.setdefault(stage.model, {})[stage.stage] = stage.version
        return [
            {
                "object": "registry.model",
                "name": model,
                "versions": count,
                "latest": latest,
                "stages": by_model.get(model, {}),
            }
            for model, count, latest in counts
        ]

    async def list_versions(self, name: str) -> list[dict[str, Any]]:
        async with self.database.session() as session:
            rows = (
                await session.scalars(
                    select(RegistryVersion).where(RegistryVersion.model == name).order_by(RegistryVersion.version)
                )
            ).all()
            stages = await self._stages_of(session, name)
        if not rows:
            raise NotFound(f"No registered model '{name}'.", param="name", code="model_not_registered")
        return [version_dict(row, stages.get(row.version, [])) for row in rows]

    async def get(self, name: str, version: int) -> dict[str, Any]:
        async with self.database.session() as session:
            row = await self._version(session, name, version)
            stages = await self._stages_of(session, name)
        return version_dict(row, stages.get(version, []))

    async def stage(self, name: str, stage: str) -> dict[str, Any]:
        check_stage(stage)
        async with self.database.session() as session:
            row = await session.get(RegistryStage, (name, stage))
        if row is None:
            raise NotFound(f"Model '{name}' has no version in stage '{stage}'.", param="stage", code="stage_empty")
        return stage_dict(row)

    async def promote(self, name: str, version: int, stage: str, *, actor: str | None = None) -> dict[str, Any]:
        """Point ``stage`` at ``version``; the version it named before goes on its history."""
        check_stage(stage)
        async with self.database.session() as session:
            await self._version(session, name, version)
            row = await session.get(RegistryStage, (name, stage), with_for_update=True)
            now = datetime.now(UTC)
            if row is None:
                row = RegistryStage(
                    model=name, stage=stage, version=version, history=[], updated_at=now, updated_by=actor
                )
                session.add(row)
                previous = None
            else:
                previous = row.version
                if previous == version:
                    raise Conflict(f"Stage '{stage}' of '{name}' already names version {version}.")
                row.history = [*row.history, previous]  # a new list: JSON columns track assignment, not mutation
                row.version, row.updated_at, row.updated_by = version, now, actor
            result = stage_dict(row)
        await self._audit(
            "registry.promote", 200, actor, {"model": name, "stage": stage, "version": version, "previous": previous}
        )
        return result

    async def rollback(self, name: str, stage: str, *, actor: str | None = None) -> dict[str, Any]:
        """Return ``stage`` to the version it named before its last promotion."""
        check_stage(stage)
        async with self.database.session() as session:
            row = await session.get(RegistryStage, (name, stage), with_for_update=True)
            if row is None:
                raise NotFound(f"Model '{name}' has no version in stage '{stage}'.", param="stage", code="stage_empty")
            if not row.history:
                raise Conflict(f"Stage '{stage}' of '{name}' has no previous version to roll back to.")
            left = row.version
            row.version, row.history = row.history[-1], row.history[:-1]
            row.updated_at, row.updated_by = datetime.now(UTC), actor
            result = stage_dict(row)
        await self._audit(
            "registry.rollback", 200, actor, {"model": name, "stage": stage, "version": row.version, "from": left}
        )
        return result

    async def resolve(self, reference: Reference) -> RegistryVersion:
        async with self.database.session() as session:
            version = reference.version
            if version is None:
                assert reference.stage is not None
                stage = await session.get(RegistryStage, (reference.name, reference.stage))
                if stage is None:
                    raise SpecError(
                        f"path: registry model '{reference.name}' has no version in stage '{reference.stage}'",
                        param="path",
                    )
                version = stage.version
            row = await session.scalar(
                select(RegistryVersion).where(
                    RegistryVersion.model == reference.name, RegistryVersion.version == version
                )
            )
        if row is None:
            raise SpecError(f"path: registry model '{reference.name}' has no version {version}", param="path")
        return row

    async def materialise(self, reference: Reference, root: Path | None = None) -> tuple[RegistryVersion, Materialised]:
        """The local folder a model loads from for ``reference`` (every file checked against its hash)."""
        row = await self.resolve(reference)
        return row, await materialise(self.artifacts, entries_from(row.manifest), row.signature, root)

    async def _version(self, session: Any, name: str, version: int) -> RegistryVersion:
        row = await session.scalar(
            select(RegistryVersion).where(RegistryVersion.model == name, RegistryVersion.version == version)
        )
        if row is None:
            raise NotFound(f"Model '{name}' has no version {version}.", param="version", code="version_not_found")
        return row  # type: ignore[no-any-return]

    async def _stages_of(self, session: Any, name: str) -> dict[int, list[str]]:
        named: dict[int, list[str]] = {}
        for row in (await session.scalars(select(RegistryStage).where(RegistryStage.model == name))).all():
            named.setdefault(row.version, []).append(row.stage)
        return named

    async def audit_event(self, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        """An event of a registry action taken elsewhere (a canary promotion's steps) on the same trail."""
        await self._audit(action, 200, actor, detail)

    async def _audit(self, action: str, status: int, actor: str | None, detail: dict[str, Any]) -> None:
        await self.audit(AuditEvent("admin", action, status, tenant="admin", actor=actor, detail=detail))
