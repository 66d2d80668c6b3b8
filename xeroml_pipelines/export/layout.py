"""Where an export's objects live under its destination's prefix (docs/guarantees.md, "Files").

`dated` (the default): `{table}/2025-01-15.jsonl`, hours as `{table}/2025-01-15/13.jsonl`
(`.parquet` for Parquet files, whatever their codec).
`hive`: `{table}/date=2025-01-15/data.jsonl`, hours as `{table}/date=2025-01-15/hour=13/data.jsonl`,
so Athena, Spark, DuckDB and BigQuery read the partition columns from the path.
Manifests are `_manifests/{table}/2025-01-15.json` in both: outside the table folders.
"""

from __future__ import annotations

from typing import Literal, cast

from dagster import Config

from xeroml_pipelines.export.compression import EXTENSIONS, Compression
from xeroml_pipelines.export.formats import Codec, FileFormat
from xeroml_pipelines.windows import Window

# Outside `{table}/`: a `{table}/*.jsonl` glob or a COPY of the folder never sees a manifest.
MANIFESTS_DIR = "_manifests"
HIVE_FILE = "data"

LayoutStyle = Literal["dated", "hive"]


class Layout(Config):
    """An export's objects under its destination: built from its configuration (`ExportConfig.object_layout`)
    and handed to its IO manager, checks, sensors, verify and the CLI. Dagster config (frozen),
    so the IO manager holds it as it is, not fields copied from it."""

    prefix: str
    compression: Codec = "none"
    style: LayoutStyle = "dated"
    file_format: FileFormat = "jsonl"

    @property
    def extension(self) -> str:
        return ".parquet" if self.file_format == "parquet" else EXTENSIONS[cast(Compression, self.compression)]

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def table_folder(self, table: str) -> str:
        return self.key(table) + "/"

    def manifests_folder(self, table: str) -> str:
        return self.key(MANIFESTS_DIR, table) + "/"

    def data_key(self, table: str, window: Window) -> str:
        extension = self.extension
        if self.style == "hive":
            return self.key(table, window.hive_path, HIVE_FILE + extension)
        return self.key(table, window.relative_path + extension)

    def partition_prefix(self, table: str, window: Window) -> str:
        """What a listing of one partition's data objects starts with: its object under any
        extension (a leftover of another format or codec shows up), nothing of another partition."""
        if self.style == "hive":
            return self.key(table, window.hive_path) + "/"
        return self.key(table, window.relative_path + ".")

    def manifest_key(self, table: str, window: Window) -> str:
        return self.key(MANIFESTS_DIR, table, window.relative_path + ".json")
