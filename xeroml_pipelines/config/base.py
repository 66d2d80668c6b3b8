"""What every configuration model shares: unknown fields are errors, values are frozen; a table
is one of the registry's."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema

from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.tables import TABLES, exported_table

__all__ = ["ConfigError", "Strict", "TableName"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_table(name: str) -> str:
    return exported_table(name).name


TableName = Annotated[str, AfterValidator(_known_table), WithJsonSchema({"type": "string", "enum": list(TABLES)})]
