"""The SQL of vector stores and their files (the chunks' SQL is in the vector index backends).

A file's ingestion status is its job's, read with it in one query (``FileStatus``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.sql import Select

from strata.workflows.paging import Cursor, Order, page
from strata.workflows.store import JobStore
from strata.workflows.tables import Job
from strata.workflows.vector_tables import VectorStore, VectorStoreFile

FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
STATUS_OF_JOB: dict[str, FileStatus] = {
    "queued": "in_progress", "running": "in_progress", "compensating": "in_progress",
    "succeeded": "completed", "dead_letter": "failed", "cancelled": "cancelled",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AttachedFile:
    row: VectorStoreFile
    status: FileStatus
    error: str | None  # the job's error, when ingestion failed


class VectorCatalog:
    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs  # shares its write queue: one writer per process on SQLite

    async def add_store(self, store: VectorStore) -> None:
        async with self.jobs.writing() as session:
            session.add(store)

    async def store(self, tenant: str, store_id: str) -> VectorStore | None:
        async with self.jobs.database.session() as session:
            query = select(VectorStore).where(VectorStore.id == store_id, VectorStore.tenant == tenant)
            return await session.scalar(query)

    async def stores(self, tenant: str, store_ids: Collection[str]) -> list[VectorStore]:
        async with self.jobs.database.session() as session:
            query = select(VectorStore).where(VectorStore.id.in_(list(store_ids)), VectorStore.tenant == tenant)
            return list((await session.scalars(query)).all())

    async def list_stores(self, tenant: str, *, limit: int, order: Order, after: str | None) -> list[VectorStore]:
        cursor = None
        if after is not None:
            found = await self.store(tenant, after)
            cursor = None if found is None else Cursor(found.created_at, found.id)
        query = page(select(VectorStore).where(VectorStore.tenant == tenant), VectorStore, VectorStore.id, cursor,
                     order, limit)  # fmt: skip
        async with self.jobs.database.session() as session:
            return list((await session.scalars(query)).all())

    async def delete_store(self, tenant: str, store_id: str) -> bool:
        async with self.jobs.writing() as session:
            gone = await session.execute(
                delete(VectorStore).where(VectorStore.id == store_id, VectorStore.tenant == tenant)
            )
            await session.execute(
                delete(VectorStoreFile).where(VectorStoreFile.store_id == store_id, VectorStoreFile.tenant == tenant)
            )
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def add_file(self, attached: VectorStoreFile) -> None:
        async with self.jobs.writing() as session:
            await session.merge(attached)  # attaching again replaces the earlier attachment and its job

    def _files_query(self) -> Select[Any]:  # rows of (VectorStoreFile, job status, job error)
        query = select(VectorStoreFile, Job.status, Job.error).join(Job, Job.id == VectorStoreFile.job_id)
        return query  # type: ignore[return-value]

    async def file(self, tenant: str, store_id: str, file_id: str) -> AttachedFile | None:
        query = self._files_query().where(
            VectorStoreFile.tenant == tenant, VectorStoreFile.store_id == store_id, VectorStoreFile.file_id == file_id
        )
        async with self.jobs.database.session() as session:
            row = (await session.execute(query)).one_or_none()
        return None if row is None else AttachedFile(row[0], STATUS_OF_JOB[row[1]], row[2])

    async def list_files(
        self, tenant: str, store_id: str, *, limit: int, order: Order, after: str | None, status: FileStatus | None
    ) -> list[AttachedFile]:
        cursor = None
        if after is not None:
            found = await self.file(tenant, store_id, after)
            cursor = None if found is None else Cursor(found.row.created_at, found.row.file_id)
        query = self._files_query().where(VectorStoreFile.tenant == tenant, VectorStoreFile.store_id == store_id)
        if status is not None:
            query = query.where(Job.status.in_([job for job, file in STATUS_OF_JOB.items() if file == status]))
        query = page(query, VectorStoreFile, VectorStoreFile.file_id, cursor, order, limit)
        async with self.jobs.database.session() as session:
            rows = (await session.execute(query)).all()
        return [AttachedFile(row[0], STATUS_OF_JOB[row[1]], row[2]) for row in rows]

    async def delete_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        async with self.jobs.writing() as session:
            gone = await session.execute(
                delete(VectorStoreFile).where(
                    VectorStoreFile.tenant == tenant,
                    VectorStoreFile.store_id == store_id,
                    VectorStoreFile.file_id == file_id,
                )
            )
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def filenames(self, tenant: str, store_ids: Collection[str]) -> dict[str, str]:
        """File id -> filename of the files attached to these stores."""
        query = select(VectorStoreFile.file_id, VectorStoreFile.filename).where(
            VectorStoreFile.tenant == tenant, VectorStoreFile.store_id.in_(list(store_ids))
        )
        async with self.jobs.database.session() as session:
            return {file_id: name for file_id, name in (await session.execute(query)).all()}

    async def file_counts(self, store_ids: Collection[str]) -> dict[str, tuple[dict[FileStatus, int], int]]:
        """Per store: how many files are in each status, and their bytes."""
        if not store_ids:
            return {}
        query = (
            select(VectorStoreFile.store_id, Job.status, func.count(), func.sum(VectorStoreFile.bytes))
            .join(Job, Job.id == VectorStoreFile.job_id)
            .where(VectorStoreFile.store_id.in_(list(store_ids)))
            .group_by(VectorStoreFile.store_id, Job.status)
        )
        async with self.jobs.database.session() as session:
            rows = (await session.execute(query)).all()
        counts: dict[str, tuple[dict[FileStatus, int], int]] = {}
        for store_id, job_status, count, size in rows:
            by_status, total_bytes = counts.get(store_id, ({}, 0))
            status = STATUS_OF_JOB[job_status]
            by_status[status] = by_status.get(status, 0) + int(count)
            counts[store_id] = (by_status, total_bytes + int(size or 0))
        return counts
