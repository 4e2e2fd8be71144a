"""Metadata filters of vector store search, in OpenAI's shape: a comparison ``{type: eq, key, value}`` or
a compound ``{type: and|or, filters: [...]}``. Evaluated in Python (the embedded index) or as SQL over a
JSONB column (pgvector); both give the same answer for the same attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | float | bool


class ComparisonFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["eq", "ne", "gt", "gte", "lt", "lte"]
    key: str = Field(min_length=1, max_length=256)
    value: Scalar


class CompoundFilter(BaseModel):
    # One schema for input and output: pydantic would otherwise split a recursive model in the OpenAPI document.
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_mode_override="validation")

    type: Literal["and", "or"]
    filters: Annotated[list[ComparisonFilter | CompoundFilter], Field(min_length=1, max_length=32)]


Filter = ComparisonFilter | CompoundFilter

_ORDERED = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
_SQL_OPERATOR = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def matches(condition: Filter, attributes: Mapping[str, Any] | None) -> bool:
    """Whether a chunk with ``attributes`` passes; a missing key passes only ``ne``."""
    if isinstance(condition, CompoundFilter):
        results = (matches(inner, attributes) for inner in condition.filters)
        return all(results) if condition.type == "and" else any(results)
    present = attributes is not None and condition.key in attributes
    if not present:
        return condition.type == "ne"
    assert attributes is not None
    have, want = attributes[condition.key], condition.value
    if condition.type in ("eq", "ne"):
        return _same(have, want) == (condition.type == "eq")
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, str) != isinstance(have, str):
        return False
    return bool(_ORDERED[condition.type](have, want))


def _same(have: Any, want: Scalar) -> bool:
    # True == 1 in Python; a filter on a boolean must not match the number 1, nor the reverse.
    return isinstance(have, bool) == isinstance(want, bool) and have == want


def to_sql(condition: Filter, column: str, params: list[Any]) -> str:
    """The filter as a SQL condition over JSONB ``column``; values are appended to ``params`` ($n)."""
    if isinstance(condition, CompoundFilter):
        joiner = " AND " if condition.type == "and" else " OR "
        return "(" + joiner.join(to_sql(inner, column, params) for inner in condition.filters) + ")"
    params.append(condition.key)
    key = f"${len(params)}::text"
    want = condition.value
    value: Scalar
    if isinstance(want, bool):
        kind, cast, value = "boolean", "::boolean", want
    elif isinstance(want, str):
        kind, cast, value = "string", "::text", want
    else:
        kind, cast, value = "number", "::double precision", float(want)
    params.append(value)
    holder = f"${len(params)}{cast}"
    typed = f"jsonb_typeof({column} -> {key}) = '{kind}'"
    compare = f"({column} ->> {key}){cast} {_SQL_OPERATOR[condition.type]} {holder}"
    if condition.type == "ne":
        return f"(NOT ({column} ? {key}) OR NOT {typed} OR {compare})"
    return f"({typed} AND {compare})"
