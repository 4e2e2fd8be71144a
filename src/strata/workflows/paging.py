"""Cursor pagination as the OpenAI lists do it: by creation time then id, from just past an ``after`` row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, or_
from sqlalchemy.sql import Select

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: float
    key: str


def page(query: Select[Any], model: Any, id_column: Any, after: Any, order: Order, limit: int) -> Select[Any]:
    """``query`` ordered by creation (then id) from just past the ``after`` row, ``limit`` + 1 rows (to see
    whether there are more)."""
    created = model.created_at
    if after is not None:
        later = created > after.created_at if order == "asc" else created < after.created_at
        tie = id_column > after.key if order == "asc" else id_column < after.key
        query = query.where(or_(later, and_(created == after.created_at, tie)))
    ordering = (created.asc(), id_column.asc()) if order == "asc" else (created.desc(), id_column.desc())
    return query.order_by(*ordering).limit(limit + 1)
