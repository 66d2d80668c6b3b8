"""The exported files' schemas, all from the line model of each exported table (`tables`): the
JSON Schema of a line, the BigQuery load schema, and the Snowflake, Redshift and DuckDB table DDL
(the Parquet schema, from the same model, is in `export.parquet`).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Literal, Union

from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.tables.spec import Line


def model(table: str) -> type[Line]:
    """The pydantic model of a table's lines (`tables.spec.ExportedTable.model`)."""
    return exported_table(table).model


Dialect = Literal["bigquery", "snowflake", "redshift", "duckdb"]


def unwrap(annotation: object) -> tuple[object, bool, tuple[object, ...]]:
    """(base type, nullable, markers such as "large") of a field annotation."""
    nullable = False
    markers: tuple[object, ...] = ()
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        annotation = args[0]
    if typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        markers = tuple(extra)
    return annotation, nullable, markers


_SCALARS: dict[type, dict[str, str]] = {
    str: {"bigquery": "STRING", "snowflake": "VARCHAR", "redshift": "VARCHAR(65535)", "duckdb": "VARCHAR"},
    datetime: {"bigquery": "TIMESTAMP", "snowflake": "TIMESTAMP_TZ", "redshift": "TIMESTAMPTZ", "duckdb": "TIMESTAMPTZ"},
    bool: {"bigquery": "BOOL", "snowflake": "BOOLEAN", "redshift": "BOOLEAN", "duckdb": "BOOLEAN"},
    int: {"bigquery": "INT64", "snowflake": "NUMBER(20, 0)", "redshift": "BIGINT", "duckdb": "BIGINT"},
    float: {"bigquery": "FLOAT64", "snowflake": "FLOAT", "redshift": "DOUBLE PRECISION", "duckdb": "DOUBLE"},
}
_DUCKDB_VALUES = {str: "VARCHAR", int: "UBIGINT", float: "DOUBLE"}


def column_type(annotation: object, dialect: Dialect) -> str:
    base, _, markers = unwrap(annotation)
    origin = typing.get_origin(base)
    if origin is dict:
        value = unwrap(typing.get_args(base)[1])[0]
        return {
            "bigquery": "JSON",
            "snowflake": "OBJECT",
            "redshift": "SUPER",
            "duckdb": f"MAP(VARCHAR, {_DUCKDB_VALUES[value]})",  # type: ignore[index]
        }[dialect]
    if origin is list:
        return {"bigquery": "ARRAY<STRING>", "snowflake": "ARRAY", "redshift": "SUPER", "duckdb": "VARCHAR[]"}[dialect]
    if "large" in markers and dialect == "redshift":
        return "SUPER"  # holds up to 16 MB; VARCHAR stops at 64 KB
    return _SCALARS[base][dialect]  # type: ignore[index]


NO_EXCLUSIONS: frozenset[str] = frozenset()


def columns(table: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> list[tuple[str, object, bool]]:
    """(name, annotation, nullable) in file order; `exclude`: the fields a selection leaves out."""
    fields = model(table).model_fields.items()
    return [(name, f.annotation, unwrap(f.annotation)[1]) for name, f in fields if name not in exclude]


def json_schema(table: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> dict:
    schema = model(table).model_json_schema()
    schema["$id"] = f"https://xeroml.dev/schemas/export/{table}.json"
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in exclude}
    schema["required"] = [k for k in schema.get("required", []) if k not in exclude]
    return schema


def bigquery_schema(table: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> list[dict]:
    """The `schema` of a NEWLINE_DELIMITED_JSON load (also `bq load --schema=file.json`)."""
    out = []
    for name, annotation, nullable in columns(table, exclude):
        base, _, _ = unwrap(annotation)
        if typing.get_origin(base) is list:
            out.append({"name": name, "type": "STRING", "mode": "REPEATED"})
        else:
            out.append(
                {"name": name, "type": column_type(annotation, "bigquery"), "mode": "NULLABLE" if nullable else "REQUIRED"}
            )
    return out


def ddl(table: str, dialect: Dialect, name: str | None = None, exclude: frozenset[str] = NO_EXCLUSIONS) -> str:
    target = name or f"xeroml_{table}"
    # BigQuery arrays cannot be NOT NULL nor NULL: a missing array is an empty one.
    cols = []
    for col, annotation, nullable in columns(table, exclude):
        type_ = column_type(annotation, dialect)
        not_null = "" if nullable or type_.startswith("ARRAY<") else " NOT NULL"
        cols.append(f"    {_quote(col, dialect)} {type_}{not_null}")
    return f"CREATE TABLE IF NOT EXISTS {target} (\n" + ",\n".join(cols) + "\n)"


def add_columns(
    table: str, dialect: Dialect, target: str, existing: Collection[str], exclude: frozenset[str] = NO_EXCLUSIONS
) -> list[str]:
    """The statements adding to a loaded table the columns it lacks (a column the export gained,
    such as the latency metrics, or one a field selection takes back in), nullable: the rows
    loaded before have no value for them. `existing`: the table's column names, any case."""
    have = {name.lower() for name in existing}
    return [
        f"ALTER TABLE {target} ADD COLUMN {_quote(name, dialect)} {column_type(annotation, dialect)}"
        for name, annotation, _ in columns(table, exclude)
        if name.lower() not in have
    ]


def _quote(column: str, dialect: Dialect) -> str:
    return f"`{column}`" if dialect == "bigquery" else f'"{column}"'


def render(table: str, fmt: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> str:
    if fmt == "jsonschema":
        return json.dumps(json_schema(table, exclude), indent=2)
    if fmt == "bigquery":
        return json.dumps(bigquery_schema(table, exclude), indent=2)
    return ddl(table, fmt, exclude=exclude) + ";"  # type: ignore[arg-type]
