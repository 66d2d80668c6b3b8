"""What every warehouse resource offers the load assets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from xeroml_pipelines.io_managers.base import ExportIOManager


@dataclass(frozen=True)
class LoadResult:
    rows_in_file: int
    live_rows: int  # rows of this project in the target after the load
    target: str


class Warehouse(Protocol):
    def load(self, table: str, object_key: str | None, project_id: str, source: ExportIOManager) -> LoadResult:
        """Merge one partition's object (None: the partition had no rows) from the export's
        destination `source`, which each warehouse addresses its own way: a local copy, a stage
        path, a gs:// or s3:// URI."""
