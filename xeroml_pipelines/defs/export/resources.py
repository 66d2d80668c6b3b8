"""Resources built from the configuration: the ClickHouse source and one IO manager per export.

Secrets only ever travel as `EnvVar`s: Dagster resolves them at run time and never shows them.
"""

from __future__ import annotations

from dagster import EnvVar
from dagster_azure.blob import AzureBlobStorageDefaultCredential, AzureBlobStorageKeyCredential, AzureBlobStorageSASTokenCredential

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import AzureDestination, ClickHouseConfig, ExportConfig, GCSDestination, LocalDestination, S3Destination
from xeroml_pipelines.io_managers.azure import AzureBlobClientResource, AzureBlobExportIOManager
from xeroml_pipelines.io_managers.base import ExportIOManager
from xeroml_pipelines.io_managers.gcs import GCSClientResource, GCSExportIOManager
from xeroml_pipelines.io_managers.local import LocalExportIOManager
from xeroml_pipelines.io_managers.s3 import S3ClientResource, S3ExportIOManager


def _env(name: str | None) -> EnvVar | None:
    return EnvVar(name) if name else None


def clickhouse_resource(cfg: ClickHouseConfig) -> ClickHouseResource:
    return ClickHouseResource(url=cfg.url, user=cfg.user, password=_env(cfg.password_env), database=cfg.database)


def _s3(dest: S3Destination) -> S3ClientResource:
    return S3ClientResource(
        region_name=dest.region,
        endpoint_url=dest.endpoint_url,
        profile_name=dest.profile,
        aws_access_key_id=_env(dest.access_key_id_env),
        aws_secret_access_key=_env(dest.secret_access_key_env),
        aws_session_token=_env(dest.session_token_env),
        role_arn=dest.role_arn,
        external_id=_env(dest.external_id_env),
        sts_endpoint_url=dest.sts_endpoint_url,
        addressing_style=dest.addressing_style,
        max_attempts=dest.max_attempts,
    )


def _azure(dest: AzureDestination) -> AzureBlobClientResource:
    if dest.connection_string_env:
        return AzureBlobClientResource(connection_string=EnvVar(dest.connection_string_env), max_retries=dest.max_retries, retry_backoff_s=dest.retry_backoff_s)
    if dest.sas_token_env:
        credential = AzureBlobStorageSASTokenCredential(token=EnvVar(dest.sas_token_env))
    elif dest.account_key_env:
        credential = AzureBlobStorageKeyCredential(key=EnvVar(dest.account_key_env))
    else:
        credential = AzureBlobStorageDefaultCredential()
    return AzureBlobClientResource(account_url=dest.account_url, credential=credential, max_retries=dest.max_retries, retry_backoff_s=dest.retry_backoff_s)


def export_io_manager(export: ExportConfig) -> ExportIOManager:
    dest = export.destination
    common = {"prefix": dest.prefix, "compression": export.compression}
    if isinstance(dest, LocalDestination):
        return LocalExportIOManager(base_dir=dest.path, **common)
    if isinstance(dest, S3Destination):
        return S3ExportIOManager(s3=_s3(dest), bucket=dest.bucket, part_size_mib=dest.part_size_mib, sse_kms_key_id=dest.sse_kms_key_id, **common)
    if isinstance(dest, GCSDestination):
        gcs = GCSClientResource(
            project=dest.project, service_account_json=_env(dest.service_account_json_env), service_account_file=dest.service_account_file
        )
        return GCSExportIOManager(
            gcs=gcs, bucket=dest.bucket, chunk_size_mib=dest.chunk_size_mib, retry_deadline_s=dest.retry_deadline_s, **common
        )
    return AzureBlobExportIOManager(azure=_azure(dest), container=dest.container, block_size_mib=dest.block_size_mib, **common)
