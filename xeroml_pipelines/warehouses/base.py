"""What every warehouse resource offers the load assets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class LoadResult:
    rows_in_file: int
    live_rows: int  # rows of this project in the target after the load
    target: str


class ObjectFetcher(Protocol):
    def __call__(self, uri: str, into: Path) -> Path:
        """Make the object at `uri` readable as a local file (downloaded into `into` if remote)."""


class Warehouse(Protocol):
    def load(self, table: str, uri: str, project_id: str, fetch: ObjectFetcher) -> LoadResult: ...
