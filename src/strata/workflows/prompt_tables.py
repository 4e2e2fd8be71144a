"""Prompt templates: one row per tenant's prompt (its version pointers) and one per immutable version.

Ids are the tenant's own names, so the primary keys start with the tenant: two tenants may both have
a prompt called ``support``, and neither can read the other's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from strata.store import Base


class Prompt(Base):
    __tablename__ = "prompts"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)  # what a request without a version gets
    latest_version: Mapped[int] = mapped_column(Integer)  # the highest version created
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)  # the last new version or rollback


class PromptVersion(Base):
    """Written once, never updated: a version number always means the same template."""

    __tablename__ = "prompt_versions"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    messages: Mapped[Any] = mapped_column(JSON)  # [{"role", "content"}], content Jinja2 source
    variables: Mapped[Any] = mapped_column(JSON)  # {name: {"type", "required", "default", "description"}}
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the key that created it
    created_at: Mapped[float] = mapped_column(Float)
