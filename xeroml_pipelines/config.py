"""The exports a deployment runs, declared in one YAML file (path in `XEROML_CONFIG`).

Validated before any work starts; an error names the file and the field. Secrets are never in
the file: it names the environment variable that holds each one.

Without `XEROML_CONFIG` the embedded default applies: a chDB database in `./xeroml-demo-db`, one
export `local` of project `demo` into `./xeroml-export/`.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xeroml_pipelines.export.compression import Compression
from xeroml_pipelines.export.window import Cadence, Mode
from xeroml_pipelines.identifiers import validate_clickhouse_url, validate_identifier, validate_prefix, validate_project_id
from xeroml_pipelines.tables import ALL_TABLES, TableName

CONFIG_ENV = "XEROML_CONFIG"
DEFAULT_CHDB_DIR = "xeroml-demo-db"
DEFAULT_EXPORT_DIR = "xeroml-export"
DEMO_PROJECT = "demo"
DEMO_START = date(2025, 1, 13)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the source and each bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClickHouseConfig(_Strict):
    url: str = Field(description="https://host:8443, http://host:8123, or chdb:///abs/path (embedded)")
    user: str = "default"
    password_env: str | None = Field(default=None, description="Name of the env var holding the password")
    database: str = "default"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return validate_clickhouse_url(v)

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        return validate_identifier(v, "database")


class LocalDestination(_Strict):
    provider: Literal["local"]
    path: str = DEFAULT_EXPORT_DIR
    prefix: str = ""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return validate_prefix(v)

    @property
    def location(self) -> str:
        return str(Path(self.path).absolute() / self.prefix)


Destination = Annotated[LocalDestination, Field(discriminator="provider")]


class ExportConfig(_Strict):
    name: str
    project_id: str
    destination: Destination
    cadence: Cadence = "daily"
    mode: Mode = "incremental"
    compression: Compression = "none"
    tables: tuple[TableName, ...] = ALL_TABLES
    start_date: date
    lag_minutes: int = Field(default=20, ge=0, description="Wait after a window closes before exporting it")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_identifier(v, "name")

    @field_validator("project_id")
    @classmethod
    def _project(cls, v: str) -> str:
        return validate_project_id(v)

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one table")
        if len(set(v)) != len(v):
            raise ValueError(f"tables are listed twice: {sorted(t for t in set(v) if v.count(t) > 1)}")
        return v

    @field_validator("start_date")
    @classmethod
    def _start(cls, v: date) -> date:
        if v > datetime.now(timezone.utc).date():
            raise ValueError(f"start_date {v} is in the future")
        return v


class XeroMLConfig(_Strict):
    clickhouse: ClickHouseConfig
    exports: tuple[ExportConfig, ...]

    @model_validator(mode="after")
    def _distinct(self) -> XeroMLConfig:
        if not self.exports:
            raise ValueError("declare at least one export")
        names = [e.name for e in self.exports]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"export names must be unique: {dupes}")
        # Two exports writing one location would overwrite each other's files.
        seen: dict[str, str] = {}
        for e in self.exports:
            where = f"{e.destination.provider}:{e.destination.location}"
            if where in seen:
                raise ValueError(f"exports {seen[where]!r} and {e.name!r} write to the same location {where}")
            seen[where] = e.name
        return self


def default_config(root: Path | None = None) -> XeroMLConfig:
    root = (root or Path.cwd()).absolute()
    return XeroMLConfig(
        clickhouse=ClickHouseConfig(url=f"chdb://{root / DEFAULT_CHDB_DIR}"),
        exports=(
            ExportConfig(
                name="local",
                project_id=DEMO_PROJECT,
                destination=LocalDestination(provider="local", path=str(root / DEFAULT_EXPORT_DIR)),
                start_date=DEMO_START,
            ),
        ),
    )


def _format(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  - {field}: {e['msg']}")
    return "\n".join(lines)


def parse_config(text: str, source: str = "<string>") -> XeroMLConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid configuration in {source}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration in {source}: expected a mapping with 'clickhouse' and 'exports'")
    try:
        return XeroMLConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from None


def load_config() -> XeroMLConfig:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return default_config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{CONFIG_ENV}={path} does not name a readable file")
    return parse_config(p.read_text(), str(p))
