"""Validation of the names that end up in SQL text, asset keys and object keys."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlparse

from pydantic import AfterValidator

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Langfuse/XeroML project ids are cuid-like; allow the usual id alphabet, nothing that could
# escape a path or a string literal.
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_identifier(value: str, field: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{field} must be a plain identifier (letters, digits, _; not starting with a digit), got {value!r}")
    return value


def validate_project_id(value: str) -> str:
    if not _PROJECT_ID.match(value) or ".." in value:
        raise ValueError(f"project_id must be letters, digits, '_', '-', '.' (max 128), got {value!r}")
    return value


def validate_prefix(value: str) -> str:
    """An object-key prefix: relative, no empty/`.`/`..` segment, no scheme, no backslash."""
    if value == "":
        return value
    if "://" in value or value.startswith("/") or "\\" in value:
        raise ValueError(f"prefix must be a relative key prefix like 'xeroml-export', got {value!r}")
    segments = value.rstrip("/").split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _PREFIX_SEGMENT.match(segment):
            raise ValueError(f"prefix segment {segment!r} in {value!r} is not allowed (use letters, digits, '_', '-', '.', '=')")
    return "/".join(segments)


def validate_clickhouse_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "chdb"):
        raise ValueError(f"ClickHouse url must start with https://, http:// or chdb:///, got {url!r}")
    if parsed.scheme == "chdb" and (parsed.netloc or not parsed.path.startswith("/")):
        raise ValueError(f"chdb url needs an absolute path (chdb:///abs/path), got {url!r}")
    if parsed.scheme in ("http", "https") and not parsed.hostname:
        raise ValueError(f"ClickHouse url has no host: {url!r}")
    return url


def validate_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"must name an environment variable (the secret itself never goes in this file), got {value!r}")
    return value


# The name of the environment variable that holds a secret: configuration never holds the secret.
EnvVarName = Annotated[str, AfterValidator(validate_env_name)]

# a bucket's name as S3 and GCS both allow it
BUCKET = r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"


def validate_table_prefix(value: str) -> str:
    """What goes before each table's name in a warehouse: with any table name, a plain
    identifier, so the loads' SQL needs no quoting (empty: the bare table names)."""
    return validate_identifier(value + "t", "table_prefix")[:-1]


TablePrefix = Annotated[str, AfterValidator(validate_table_prefix)]


def _database_name(value: str) -> str:
    return validate_identifier(value, "database")


ClickHouseUrl = Annotated[str, AfterValidator(validate_clickhouse_url)]
DatabaseName = Annotated[str, AfterValidator(_database_name)]
