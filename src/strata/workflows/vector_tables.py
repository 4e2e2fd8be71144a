"""The catalogue of vector stores and the files attached to them (the chunks live in the vector index).

A vector store file's status is read from its ingestion job, never stored twice: the job is the
durable truth of how far ingestion got.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from strata.store import Base


class VectorStore(Base):
    __tablename__ = "vector_stores"
    __table_args__ = (Index("ix_vector_stores_tenant", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attributes: Mapped[Any] = mapped_column("metadata", JSON(none_as_null=True), nullable=True)
    embedding_model: Mapped[str] = mapped_column(String(128))  # fixed at creation: one vector space per store
    chunk_size_tokens: Mapped[int] = mapped_column(Integer)
    chunk_overlap_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


class VectorStoreFile(Base):
    __tablename__ = "vector_store_files"
    __table_args__ = (Index("ix_vector_store_files_tenant", "tenant", "store_id", "created_at"),)

    store_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str] = mapped_column(String(40))  # the ingestion job: its status is the file's status
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    attributes: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    chunk_size_tokens: Mapped[int] = mapped_column(Integer)
    chunk_overlap_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
