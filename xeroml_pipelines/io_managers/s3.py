"""The export IO manager over an S3 bucket."""

from __future__ import annotations

from xeroml_pipelines.destinations.s3 import S3Bucket
from xeroml_pipelines.io_managers.base import ExportIOManager


class S3ExportIOManager(ExportIOManager):
    destination: S3Bucket
