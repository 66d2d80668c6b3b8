"""The export IO manager over an Azure Blob Storage container."""

from __future__ import annotations

from xeroml_pipelines.destinations.azure import AzureContainer
from xeroml_pipelines.io_managers.base import ExportIOManager


class AzureBlobExportIOManager(ExportIOManager):
    destination: AzureContainer
