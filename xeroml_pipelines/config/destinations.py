"""Where an export writes, as declared in YAML; each model builds its destination resource.

Secrets are never in the file: a `*_env` field names the environment variable that holds one,
and the resource reads it through Dagster's `EnvVar` at run time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from dagster import EnvVar
from pydantic import AfterValidator, Field, field_validator, model_validator

from xeroml_pipelines.config.base import ConfigError, Strict
from xeroml_pipelines.destinations.limits import BlockSizeMiB, ChunkSizeMiB, MaxRetries, PartSizeMiB, RetryBackoff, RetryDeadline
from xeroml_pipelines.identifiers import EnvVarName, validate_prefix

if TYPE_CHECKING:  # each provider's SDK is imported only when an export uses the provider
    from xeroml_pipelines.destinations.azure import AzureContainer
    from xeroml_pipelines.destinations.base import Destination as DestinationResource
    from xeroml_pipelines.destinations.gcs import GCSBucket
    from xeroml_pipelines.destinations.local import LocalFolder
    from xeroml_pipelines.destinations.s3 import S3Bucket
    from xeroml_pipelines.io_managers.base import ExportIOManager

DEFAULT_EXPORT_DIR = "xeroml-export"
_BUCKET = r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"
_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"


def _endpoint(v: str) -> str:
    if not re.match(r"^https?://[^/\s]+/?$", v):
        raise ValueError(f"must be http(s)://host[:port], got {v!r}")
    return v


Endpoint = Annotated[str, AfterValidator(_endpoint)]


def env(name: str | None) -> EnvVar | None:
    return EnvVar(name) if name else None


# A credential's value given in code (the export registry's stored credentials), by the name of
# the field it stands for without `_env`; never in the configuration file.
Secrets = Mapping[str, str]
NO_SECRETS: Secrets = {}


class _Destination(Strict):
    prefix: str = ""

    def credentials_from_env(self) -> dict[str, str]:
        """The credentials its `*_env` fields name, read now (for a destination opened in code,
        outside a run's resource initialization); an unset or empty variable is a `ConfigError`."""
        found = {}
        for field in type(self).model_fields:
            variable = getattr(self, field) if field.endswith("_env") else None
            if variable:
                if not os.environ.get(variable):
                    raise ConfigError(f"destination.{field}: the environment variable {variable} is unset or empty")
                found[field.removesuffix("_env")] = os.environ[variable]
        return found

    def credential(self, name: str, secrets: Secrets) -> str | EnvVar | None:
        """A credential: its stored value when one is given, else the environment variable its
        `<name>_env` field names (read at run time), else None."""
        if name in secrets:
            return secrets[name]
        return env(getattr(self, f"{name}_env"))

    def io_manager_class(self) -> type[ExportIOManager]:
        raise NotImplementedError

    def io_manager(self, destination: DestinationResource, **settings: Any) -> ExportIOManager:
        """The export IO manager over `destination` (this provider's resource)."""
        return self.io_manager_class()(destination=destination, **settings)

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

    def io_manager_class(self) -> type[ExportIOManager]:
        from xeroml_pipelines.io_managers.local import LocalExportIOManager

        return LocalExportIOManager

    def resource(self, secrets: Secrets = NO_SECRETS) -> LocalFolder:
        from xeroml_pipelines.destinations.local import LocalFolder

        return LocalFolder(path=self.path, prefix=self.prefix)


class S3Destination(_Destination):
    """AWS S3 or an S3-compatible store. Credentials: access key env vars, else the default
    chain (env, profile, instance role); optionally a role to assume on top."""

    provider: Literal["s3"]
    bucket: str = Field(pattern=_BUCKET)
    region: str | None = None
    endpoint_url: Endpoint | None = Field(default=None, description="S3-compatible store; plain http only when written here")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    access_key_id_env: EnvVarName | None = None
    secret_access_key_env: EnvVarName | None = None
    session_token_env: EnvVarName | None = None
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=_ROLE_ARN)
    external_id_env: EnvVarName | None = None
    sts_endpoint_url: Endpoint | None = None
    sse_kms_key_id: str | None = None
    part_size_mib: PartSizeMiB = 64
    max_attempts: int = Field(default=5, ge=1, le=20)

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

    def io_manager_class(self) -> type[ExportIOManager]:
        from xeroml_pipelines.io_managers.s3 import S3ExportIOManager

        return S3ExportIOManager

    def resource(self, secrets: Secrets = NO_SECRETS) -> S3Bucket:
        from xeroml_pipelines.destinations.s3 import S3Bucket
        from xeroml_pipelines.destinations.s3_client import S3ClientResource

        client = S3ClientResource(
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            profile_name=self.profile,
            aws_access_key_id=self.credential("access_key_id", secrets),
            aws_secret_access_key=self.credential("secret_access_key", secrets),
            aws_session_token=self.credential("session_token", secrets),
            role_arn=self.role_arn,
            external_id=self.credential("external_id", secrets),
            sts_endpoint_url=self.sts_endpoint_url,
            addressing_style=self.addressing_style,
            max_attempts=self.max_attempts,
        )
        return S3Bucket(
            s3=client,
            bucket=self.bucket,
            prefix=self.prefix,
            part_size_mib=self.part_size_mib,
            sse_kms_key_id=self.sse_kms_key_id,
        )


class GCSDestination(_Destination):
    """Google Cloud Storage. Credentials: a service-account key (file, or JSON in an env var),
    else Application Default Credentials."""

    provider: Literal["gcs"]
    bucket: str = Field(pattern=_BUCKET)
    project: str | None = None
    service_account_json_env: EnvVarName | None = None
    service_account_file: str | None = None
    chunk_size_mib: ChunkSizeMiB = 16
    retry_deadline_s: RetryDeadline = 300

    @model_validator(mode="after")
    def _one_key(self) -> GCSDestination:
        if self.service_account_json_env and self.service_account_file:
            raise ValueError("give service_account_json_env or service_account_file, not both")
        return self

    @property
    def location(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    def io_manager_class(self) -> type[ExportIOManager]:
        from xeroml_pipelines.io_managers.gcs import GCSExportIOManager

        return GCSExportIOManager

    def resource(self, secrets: Secrets = NO_SECRETS) -> GCSBucket:
        from xeroml_pipelines.destinations.gcs import GCSBucket, GCSClientResource

        client = GCSClientResource(
            project=self.project,
            service_account_json=self.credential("service_account_json", secrets),
            service_account_file=self.service_account_file,
        )
        return GCSBucket(
            gcs=client,
            bucket=self.bucket,
            prefix=self.prefix,
            chunk_size_mib=self.chunk_size_mib,
            retry_deadline_s=self.retry_deadline_s,
        )


class AzureDestination(_Destination):
    """Azure Blob Storage. Credentials: exactly one of a connection string, a SAS token, an
    account key (each from an env var), or DefaultAzureCredential (managed identity)."""

    provider: Literal["azure"]
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    account_url: str | None = Field(default=None, description="https://<account>.blob.core.windows.net")
    connection_string_env: EnvVarName | None = None
    sas_token_env: EnvVarName | None = None
    account_key_env: EnvVarName | None = None
    default_credential: bool = False
    block_size_mib: BlockSizeMiB = 16
    max_retries: MaxRetries = 6
    retry_backoff_s: RetryBackoff = 15

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
        given = [
            n for n in ("connection_string_env", "sas_token_env", "account_key_env", "default_credential") if getattr(self, n)
        ]
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
        account = self.account_url or (
            f"${{{self.connection_string_env}}}" if self.connection_string_env else "(stored connection string)"
        )
        return f"azure:{account}/{self.container}/{self.prefix}"

    def io_manager_class(self) -> type[ExportIOManager]:
        from xeroml_pipelines.io_managers.azure import AzureBlobExportIOManager

        return AzureBlobExportIOManager

    def resource(self, secrets: Secrets = NO_SECRETS) -> AzureContainer:
        from dagster_azure.blob import (
            AzureBlobStorageDefaultCredential,
            AzureBlobStorageKeyCredential,
            AzureBlobStorageSASTokenCredential,
        )

        from xeroml_pipelines.destinations.azure import AzureContainer
        from xeroml_pipelines.destinations.azure_client import AzureBlobClientResource

        retries: dict[str, Any] = {"max_retries": self.max_retries, "retry_backoff_s": self.retry_backoff_s}
        connection_string = self.credential("connection_string", secrets)
        if connection_string:
            client = AzureBlobClientResource(connection_string=connection_string, **retries)
        else:
            assert self.account_url, "validated: account_url goes with every credential but a connection string"
            credential: AzureBlobStorageSASTokenCredential | AzureBlobStorageKeyCredential | AzureBlobStorageDefaultCredential
            sas_token, account_key = self.credential("sas_token", secrets), self.credential("account_key", secrets)
            if sas_token:
                credential = AzureBlobStorageSASTokenCredential(token=sas_token)
            elif account_key:
                credential = AzureBlobStorageKeyCredential(key=account_key)
            else:
                credential = AzureBlobStorageDefaultCredential()
            client = AzureBlobClientResource(account_url=self.account_url, credential=credential, **retries)
        return AzureContainer(azure=client, container=self.container, prefix=self.prefix, block_size_mib=self.block_size_mib)


Destination = Annotated[LocalDestination | S3Destination | GCSDestination | AzureDestination, Field(discriminator="provider")]
