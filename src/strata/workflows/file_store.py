"""The SQL of the Batch API's files and per-request results (the jobs' own SQL is in store.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from strata.workflows.paging import Cursor, Order, page
from strata.workflows.store import JobStore
from strata.workflows.tables import BatchResult, File


class FileStore:
    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs  # shares its write queue: one writer per process on SQLite

    async def add_file(self, file: File) -> File:
        """Insert ``file``; one with the same id already there (a rerun's output) is kept instead."""
        try:
            async with self.jobs.writing() as session:
                session.add(file)
        except IntegrityError:
            existing = await self.file(file.tenant, file.id)
            if existing is None:
                raise
            return existing
        return file

    async def file(self, tenant: str, file_id: str) -> File | None:
        async with self.jobs.database.session() as session:
            return await session.scalar(select(File).where(File.id == file_id, File.tenant == tenant))

    async def list_files(
        self, tenant: str, *, purpose: str | None, limit: int, order: Order, after: str | None
    ) -> list[File]:
        """Up to ``limit`` + 1 of the tenant's files (the extra one says there are more)."""
        cursor = None
        if after is not None:
            found = await self.file(tenant, after)
            cursor = None if found is None else Cursor(found.created_at, found.id)
        query = select(File).where(File.tenant == tenant)
        if purpose is not None:
            query = query.where(File.purpose == purpose)
        async with self.jobs.database.session() as session:
            return list((await session.scalars(page(query, File, File.id, cursor, order, limit))).all())

    async def delete_file(self, tenant: str, file_id: str) -> bool:
        """The file's record; its content stays in the content-addressed artifact store (another file may share it)."""
        async with self.jobs.writing() as session:
            gone = await session.execute(delete(File).where(File.id == file_id, File.tenant == tenant))
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def add_batch_result(self, job_id: str, line: int, custom_id: str, status_code: int, body: Any) -> None:
        """First write wins: a line a resumed batch runs again keeps its first recorded answer."""
        dialect = postgresql if self.jobs.database.dialect == "postgresql" else sqlite
        statement = (
            dialect.insert(BatchResult)
            .values(job_id=job_id, line=line, custom_id=custom_id, status_code=status_code, body=body)
            .on_conflict_do_nothing(index_elements=["job_id", "line"])
        )
        async with self.jobs.writing() as session:
            await session.execute(statement)

    async def batch_results(self, job_id: str) -> list[BatchResult]:
        async with self.jobs.database.session() as session:
            query = select(BatchResult).where(BatchResult.job_id == job_id).order_by(BatchResult.line)
            return list((await session.scalars(query)).all())

    async def batch_counts(self, job_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """(completed, failed) requests of each batch job so far."""
        if not job_ids:
            return {}
        ok = func.sum(case((BatchResult.status_code < 400, 1), else_=0))
        query = (
            select(BatchResult.job_id, ok, func.count())
            .where(BatchResult.job_id.in_(list(job_ids)))
            .group_by(BatchResult.job_id)
        )
        async with self.jobs.database.session() as session:
            rows = (await session.execute(query)).all()
        return {job_id: (int(good or 0), int(total) - int(good or 0)) for job_id, good, total in rows}
