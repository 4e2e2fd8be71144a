"""The SQL of the Batch API's files and per-request results (the jobs' own SQL is in store.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

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
