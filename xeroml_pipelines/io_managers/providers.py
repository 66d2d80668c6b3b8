"""One export IO manager per provider: each only names the type of its destination resource."""

from __future__ import annotations

from xeroml_pipelines.destinations.azure import AzureContainer
from xeroml_pipelines.destinations.gcs import GCSBucket
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.destinations.s3 import S3Bucket
from xeroml_pipelines.io_managers.base import ExportIOManager


class LocalExportIOManager(ExportIOManager):
    destination: LocalFolder


class S3ExportIOManager(ExportIOManager):
    destination: S3Bucket


class GCSExportIOManager(ExportIOManager):
    destination: GCSBucket


class AzureBlobExportIOManager(ExportIOManager):
    destination: AzureContainer
