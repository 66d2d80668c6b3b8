"""What an export asset returns: a lazy, re-openable description of one partition's rows.

The asset only decides *which* rows (table, window, SQL); the IO manager opens the stream and
consumes it batch by batch, so no partition is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pyarrow as pa

from xeroml_pipelines.export.window import Mode, Window


@dataclass(frozen=True)
class ExportStream:
    export_name: str
    project_id: str
    table: str
    mode: Mode
    window: Window
    open: Callable[[], AbstractContextManager[Iterator[pa.RecordBatch]]]
