"""What every configuration model shares: unknown fields are errors, values are frozen; a table
is one of the registry's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema

from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.tables import TABLES, exported_table

__all__ = ["ConfigError", "Strict", "TableName", "distinct", "not_in_future"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_table(name: str) -> str:
    return exported_table(name).name


TableName = Annotated[str, AfterValidator(_known_table), WithJsonSchema({"type": "string", "enum": list(TABLES)})]


T = TypeVar("T")


def not_in_future(day: date, field: str = "start_date") -> date:
    if day > datetime.now(UTC).date():
        raise ValueError(f"{field} {day} is in the future")
    return day


def distinct(items: Sequence[T], what: str) -> Sequence[T]:
    """A list of at least one, none twice."""
    if not items:
        raise ValueError(f"list at least one {what}")
    if len(set(items)) != len(items):
        raise ValueError(f"{what}s are listed twice: {sorted({str(x) for x in items if items.count(x) > 1})}")
    return items
