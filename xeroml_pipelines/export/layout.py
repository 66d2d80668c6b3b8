"""Where an export's objects live under its destination's prefix (README, "Files")."""

from __future__ import annotations

from dataclasses import dataclass

from xeroml_pipelines.export.compression import EXTENSIONS, Compression
from xeroml_pipelines.windows import Window

# Outside `{table}/`: a `{table}/*.jsonl` glob or a COPY of the folder never sees a manifest.
MANIFESTS_DIR = "_manifests"


@dataclass(frozen=True)
class Layout:
    prefix: str
    compression: Compression = "none"

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def table_folder(self, table: str) -> str:
        return self.key(table) + "/"

    def manifests_folder(self, table: str) -> str:
        return self.key(MANIFESTS_DIR, table) + "/"

    def data_key(self, table: str, window: Window) -> str:
        return self.key(table, window.relative_path + EXTENSIONS[self.compression])

    def manifest_key(self, table: str, window: Window) -> str:
        return self.key(MANIFESTS_DIR, table, window.relative_path + ".json")
