"""The SQL of prompt templates: create a version, read, list, roll back. Every query names the tenant.

A new version is numbered in the same transaction that reads the prompt's ``latest_version`` (the
prompt row locked on PostgreSQL; SQLite has one writer), so two writers never get the same number;
two gateways creating the same new prompt at once collide on its primary key, and the loser retries
as the second version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from strata.errors import Conflict, NotFound
from strata.store import Database
from strata.workflows.prompt_tables import Prompt, PromptVersion
from strata.workflows.store import JobStore


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """A prompt's pointers with one of its versions (the current one, unless another was asked for)."""

    prompt: Prompt
    version: PromptVersion


@dataclass(frozen=True, slots=True)
class NewVersion:
    tenant: str
    prompt_id: str
    messages: list[dict[str, Any]]
    variables: dict[str, Any]
    description: str | None
    created_by: str | None


def not_found(prompt_id: str, version: int | None = None, param: str = "prompt_id") -> NotFound:
    what = f"prompt '{prompt_id}'" if version is None else f"version {version} of prompt '{prompt_id}'"
    return NotFound(f"No {what} found.", param=param, code="prompt_not_found")


async def load(database: Database, tenant: str, prompt_id: str, version: int | None) -> PromptRecord | None:
    """The prompt and the asked version (None: its current one), or None when either does not exist."""
    async with database.session() as session:
        prompt = await session.scalar(select(Prompt).where(Prompt.tenant == tenant, Prompt.id == prompt_id))
        if prompt is None:
            return None
        wanted = prompt.current_version if version is None else version
        row = await session.get(PromptVersion, (tenant, prompt_id, wanted))
    return None if row is None else PromptRecord(prompt, row)


class PromptCatalog:
    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs  # shares its write queue: one writer per process on SQLite

    @property
    def database(self) -> Database:
        return self.jobs.database

    async def create_version(self, new: NewVersion) -> PromptRecord:
        try:
            return await self._create_version(new)
        except IntegrityError:  # another writer created the prompt or took the number: count again
            return await self._create_version(new)

    async def _create_version(self, new: NewVersion) -> PromptRecord:
        now = time.time()
        async with self.jobs.writing() as session:
            query = select(Prompt).where(Prompt.tenant == new.tenant, Prompt.id == new.prompt_id).with_for_update()
            prompt = await session.scalar(query)
            if prompt is None:
                prompt = Prompt(tenant=new.tenant, id=new.prompt_id, current_version=1, latest_version=1,
                                created_at=now, updated_at=now)  # fmt: skip
                session.add(prompt)
            else:
                prompt.latest_version += 1
                prompt.current_version, prompt.updated_at = prompt.latest_version, now
            version = PromptVersion(
                tenant=new.tenant, prompt_id=new.prompt_id, version=prompt.latest_version, messages=new.messages,
                variables=new.variables, description=new.description, created_by=new.created_by, created_at=now,
            )  # fmt: skip
            session.add(version)
        return PromptRecord(prompt, version)

    async def get(self, tenant: str, prompt_id: str, version: int | None = None) -> PromptRecord:
        found = await load(self.database, tenant, prompt_id, version)
        if found is None:
            raise not_found(prompt_id, version, "version" if version is not None else "prompt_id")
        return found

    async def list_prompts(self, tenant: str, *, limit: int, after: str | None) -> list[PromptRecord]:
        """Up to ``limit`` + 1 prompts by id (the extra one says there are more), each with its current version."""
        query = select(Prompt, PromptVersion).join(
            PromptVersion,
            (PromptVersion.tenant == Prompt.tenant) & (PromptVersion.prompt_id == Prompt.id)
            & (PromptVersion.version == Prompt.current_version),
        ).where(Prompt.tenant == tenant)  # fmt: skip
        if after is not None:
            query = query.where(Prompt.id > after)
        async with self.database.session() as session:
            rows = (await session.execute(query.order_by(Prompt.id).limit(limit + 1))).all()
        return [PromptRecord(prompt, version) for prompt, version in rows]

    async def versions(self, tenant: str, prompt_id: str) -> list[PromptVersion]:
        """Every version of the prompt, newest first."""
        query = (
            select(PromptVersion)
            .where(PromptVersion.tenant == tenant, PromptVersion.prompt_id == prompt_id)
            .order_by(PromptVersion.version.desc())
        )
        async with self.database.session() as session:
            rows = list((await session.scalars(query)).all())
        if not rows:
            raise not_found(prompt_id)
        return rows

    async def rollback(self, tenant: str, prompt_id: str, version: int | None) -> PromptRecord:
        """Point the prompt at ``version`` (None: the version before the current one)."""
        current = await self.get(tenant, prompt_id)
        target = current.prompt.current_version - 1 if version is None else version
        if target < 1:
            raise Conflict(f"prompt '{prompt_id}' is at version 1: there is none before it to roll back to.",
                           param="version", code="no_earlier_version")  # fmt: skip
        if await load(self.database, tenant, prompt_id, target) is None:
            raise not_found(prompt_id, target, "version")
        async with self.jobs.writing() as session:
            await session.execute(
                update(Prompt).where(Prompt.tenant == tenant, Prompt.id == prompt_id)
                .values(current_version=target, updated_at=time.time())
            )  # fmt: skip
        return await self.get(tenant, prompt_id)
