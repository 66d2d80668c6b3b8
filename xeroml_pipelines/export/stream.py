"""What an export asset returns: a lazy, re-openable description of its partitions' rows.

The asset only decides *which* rows (table, window, SQL); the IO manager opens the stream and
consumes it batch by batch, so no partition is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pyarrow as pa

from xeroml_pipelines.export.window import Mode, Window


Partitions = tuple[tuple[str, Window], ...]  # (partition key, its window), in time order


@dataclass(frozen=True)
class ExportStream:
    """One or several consecutive partitions (a range backfill), one file each.

    `open(group)` runs one query over a group of consecutive partitions of `partitions`; the IO
    manager chooses the groups (how many files it can have open at once)."""

    export_name: str
    project_id: str
    table: str
    mode: Mode
    partitions: Partitions
    open: Callable[[Partitions], AbstractContextManager[Iterator[pa.RecordBatch]]]
