"""The export IO manager over a local folder."""

from __future__ import annotations

from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.io_managers.base import ExportIOManager


class LocalExportIOManager(ExportIOManager):
    destination: LocalFolder
