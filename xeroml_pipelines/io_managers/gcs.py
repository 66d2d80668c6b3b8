"""The export IO manager over a GCS bucket."""

from __future__ import annotations

from xeroml_pipelines.destinations.gcs import GCSBucket
from xeroml_pipelines.io_managers.base import ExportIOManager


class GCSExportIOManager(ExportIOManager):
    destination: GCSBucket
