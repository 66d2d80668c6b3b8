"""The exports a deployment runs, declared in one YAML file (path in `XEROML_CONFIG`).

Validated before any work starts; an error names the file and the field. Secrets are never in
the file: it names the environment variable that holds each one.

Without `XEROML_CONFIG` the embedded default applies: a chDB database in `./xeroml-demo-db`, one
export `local` of project `demo` into `./xeroml-export/`.
"""

from __future__ import annotations

import os
import re
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
DEFAULT_WAREHOUSE_FILE = "xeroml-warehouse.duckdb"
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


class _Destination(_Strict):
    prefix: str = ""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return validate_prefix(v)


class LocalDestination(_Destination):
    provider: Literal["local"]
    path: str = DEFAULT_EXPORT_DIR

    @property
    def location(self) -> str:
        return str(Path(self.path).absolute() / self.prefix)


_BUCKET = r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"


def _env_name(v: str | None) -> str | None:
    if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
        raise ValueError(f"must name an environment variable (the secret itself never goes in this file), got {v!r}")
    return v


def _endpoint(v: str | None) -> str | None:
    if v is not None and not re.match(r"^https?://[^/\s]+/?$", v):
        raise ValueError(f"must be http(s)://host[:port], got {v!r}")
    return v


class S3Destination(_Destination):
    """AWS S3 or an S3-compatible store. Credentials: access key env vars, else the default
    chain (env, profile, instance role); optionally a role to assume on top."""

    provider: Literal["s3"]
    bucket: str = Field(pattern=_BUCKET)
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="S3-compatible store; plain http only when written here")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    external_id_env: str | None = None
    sts_endpoint_url: str | None = None
    sse_kms_key_id: str | None = None
    part_size_mib: int = Field(default=64, ge=5, le=5120)
    max_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("access_key_id_env", "secret_access_key_env", "session_token_env", "external_id_env")
    @classmethod
    def _envs(cls, v: str | None) -> str | None:
        return _env_name(v)

    @field_validator("endpoint_url", "sts_endpoint_url")
    @classmethod
    def _endpoints(cls, v: str | None) -> str | None:
        return _endpoint(v)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> S3Destination:
        if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
            raise ValueError("access_key_id_env and secret_access_key_env go together")
        if self.session_token_env and not self.access_key_id_env:
            raise ValueError("session_token_env needs access_key_id_env and secret_access_key_env")
        return self

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class GCSDestination(_Destination):
    """Google Cloud Storage. Credentials: a service-account key (file, or JSON in an env var),
    else Application Default Credentials."""

    provider: Literal["gcs"]
    bucket: str = Field(pattern=_BUCKET)
    project: str | None = None
    service_account_json_env: str | None = None
    service_account_file: str | None = None
    chunk_size_mib: int = Field(default=16, ge=1, le=1024)
    retry_deadline_s: float = Field(default=300, gt=0)

    @field_validator("service_account_json_env")
    @classmethod
    def _envs(cls, v: str | None) -> str | None:
        return _env_name(v)

    @model_validator(mode="after")
    def _one_key(self) -> GCSDestination:
        if self.service_account_json_env and self.service_account_file:
            raise ValueError("give service_account_json_env or service_account_file, not both")
        return self

    @property
    def location(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


class AzureDestination(_Destination):
    """Azure Blob Storage. Credentials: exactly one of a connection string, a SAS token, an
    account key (each from an env var), or DefaultAzureCredential (managed identity)."""

    provider: Literal["azure"]
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    account_url: str | None = Field(default=None, description="https://<account>.blob.core.windows.net")
    connection_string_env: str | None = None
    sas_token_env: str | None = None
    account_key_env: str | None = None
    default_credential: bool = False
    block_size_mib: int = Field(default=16, ge=1, le=4000)
    max_retries: int = Field(default=6, ge=0, le=20)
    retry_backoff_s: float = Field(default=15, gt=0, le=300, description="Wait before the first retry of a failed request")

    @field_validator("connection_string_env", "sas_token_env", "account_key_env")
    @classmethod
    def _envs(cls, v: str | None) -> str | None:
        return _env_name(v)

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, v: str | None) -> str | None:
        if v is not None and ("?" in v or "sig=" in v):
            raise ValueError("account_url must not carry a SAS token: put the token in the env var named by sas_token_env")
        if v is not None and not re.match(r"^https?://[^/\s]+(/[\w.-]+)*/?$", v):
            raise ValueError(f"must be http(s)://host[:port][/path], got {v!r}")
        return v

    @field_validator("container")
    @classmethod
    def _container(cls, v: str) -> str:
        if "--" in v:
            raise ValueError(f"container names cannot contain '--', got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_credential(self) -> AzureDestination:
        given = [n for n in ("connection_string_env", "sas_token_env", "account_key_env", "default_credential") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of connection_string_env, sas_token_env, account_key_env, default_credential: true"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.connection_string_env and not self.account_url:
            raise ValueError("account_url is required unless connection_string_env is given")
        return self

    @property
    def location(self) -> str:
        account = self.account_url or f"${{{self.connection_string_env}}}"
        return f"azure:{account}/{self.container}/{self.prefix}"


Destination = Annotated[LocalDestination | S3Destination | GCSDestination | AzureDestination, Field(discriminator="provider")]


class DuckDBWarehouseConfig(_Strict):
    type: Literal["duckdb"]
    path: str = DEFAULT_WAREHOUSE_FILE
    table_prefix: str = "xeroml_"


class SnowflakeWarehouseConfig(_Strict):
    """COPY INTO from `stage`, a stage the user created over the export's bucket and prefix."""

    type: Literal["snowflake"]
    account: str
    user: str
    password_env: str | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str
    schema_name: str = "PUBLIC"
    stage: str = Field(pattern=r"^[A-Za-z_][\w$.]*$")
    table_prefix: str = "xeroml_"

    @field_validator("password_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _env_name(v)


class RedshiftWarehouseConfig(_Strict):
    """COPY from the S3 export with `iam_role_arn`; the export's destination must be S3."""

    type: Literal["redshift"]
    host: str
    port: int = 5439
    database: str
    user: str
    password_env: str | None = None
    schema_name: str = "public"
    iam_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    region: str | None = None
    table_prefix: str = "xeroml_"

    @field_validator("password_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _env_name(v)


class BigQueryWarehouseConfig(_Strict):
    """load_table_from_uri from the GCS export; the export's destination must be GCS."""

    type: Literal["bigquery"]
    project: str
    dataset: str = Field(pattern=r"^[A-Za-z0-9_]+$", max_length=1024)
    location: str | None = None
    credentials_env: str | None = Field(default=None, description="Env var holding a base64 service-account key; else ADC")
    api_endpoint: str | None = Field(default=None, description="Only for an emulator")
    table_prefix: str = "xeroml_"

    @field_validator("credentials_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _env_name(v)


WarehouseConfig = Annotated[
    DuckDBWarehouseConfig | SnowflakeWarehouseConfig | RedshiftWarehouseConfig | BigQueryWarehouseConfig,
    Field(discriminator="type"),
]


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
    retries: int = Field(default=3, ge=0, le=10, description="Step retries after a transient failure (throttling, outage)")
    retry_delay_s: float = Field(default=30, ge=0, description="First retry delay; doubles each time, with jitter")
    recheck_days: int = Field(default=7, ge=0, le=90, description="Late data: partitions younger than this are recounted (0: never)")
    recheck_interval_minutes: int = Field(default=60, ge=1, description="Late data: how often they are recounted")
    max_partitions_per_run: int = Field(
        default=31, ge=1, le=744, description="Backfills: partitions exported by one run (one ClickHouse scan per table for the range)"
    )
    warehouse: WarehouseConfig | None = Field(default=None, description="Where a sensor loads each exported partition")

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

    @model_validator(mode="after")
    def _warehouse_reads_the_destination(self) -> ExportConfig:
        if self.warehouse and self.warehouse.type == "redshift" and self.destination.provider != "s3":
            raise ValueError("a redshift warehouse COPYs from S3: the export's destination must be provider: s3")
        if self.warehouse and self.warehouse.type == "bigquery" and self.destination.provider != "gcs":
            raise ValueError("a bigquery warehouse loads from GCS: the export's destination must be provider: gcs")
        return self

    @model_validator(mode="after")
    def _lag_fits_cadence(self) -> ExportConfig:
        if self.cadence == "hourly" and self.lag_minutes >= 60:
            raise ValueError("lag_minutes must be under 60 for an hourly export (the next hour's run would start first)")
        if self.cadence == "daily" and self.lag_minutes >= 24 * 60:
            raise ValueError("lag_minutes must be under 1440 for a daily export")
        return self

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
        # Two exports writing one location, or one inside the other's, would overwrite or pollute
        # each other's files.
        where = {e.name: e.destination.location.rstrip("/") + "/" for e in self.exports}
        for a in self.exports:
            for b in self.exports:
                if a.name < b.name and (where[a.name].startswith(where[b.name]) or where[b.name].startswith(where[a.name])):
                    raise ValueError(f"exports {a.name!r} and {b.name!r} write to overlapping locations {where[a.name]} and {where[b.name]}")
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
                warehouse=DuckDBWarehouseConfig(type="duckdb", path=str(root / DEFAULT_WAREHOUSE_FILE)),
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
