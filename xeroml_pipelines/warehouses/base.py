"""What every warehouse resource offers the load assets. Each warehouse's resource is also its
configuration: an export's `warehouse:` validates straight into it (its `type` picks the class),
so a setting is declared once, and a client library is imported only when a load connects."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from dagster import ConfigurableResource
from pydantic import ConfigDict

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.identifiers import TablePrefix
from xeroml_pipelines.schemas import NO_EXCLUSIONS


@dataclass(frozen=True)
class LoadResult:
    rows_in_file: int
    live_rows: int  # rows of this project in the target after the load
    target: str


class Warehouse(ConfigurableResource):
    model_config = ConfigDict(extra="forbid")

    table_prefix: TablePrefix = "xeroml_"

    @abstractmethod
    def load(
        self,
        table: str,
        object_key: str | None,
        project_id: str,
        source: Destination,
        exclude: frozenset[str] = NO_EXCLUSIONS,
        file_format: FileFormat = "jsonl",
    ) -> LoadResult:
        """Merge one partition's object (None: the partition had no rows) from the export's
        destination `source`, which each warehouse addresses its own way: a local copy, a stage
        path, a gs:// or s3:// URI. `exclude`: the columns the export's field selection leaves
        out; the table is created with the others. `file_format`: the object's, as its manifest
        says: each warehouse reads Parquet natively."""
