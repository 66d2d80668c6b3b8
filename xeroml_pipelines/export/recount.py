"""Recount partitions in ClickHouse: rows and fingerprint, to compare with their manifests.

The fingerprint is the XOR of cityHash64(id, event_ts) over the partition's lines, computed by
the same query an export runs; a late row, a record moved to another partition by an update,
or a delete all change it, even when the row count stays the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xeroml_pipelines.clickhouse.queries import fingerprint_query
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.windows import Mode, Span, Window

EMPTY_FINGERPRINT = f"{0:016x}"


@dataclass(frozen=True)
class Recount:
    partition: str
    rows: int
    fingerprint: str

    def drifted_from(self, manifest: Manifest) -> bool:
        return (self.rows, self.fingerprint) != (manifest.rows, manifest.fingerprint)


def recount(clickhouse: ClickHouseResource, project_id: str, table: str, mode: Mode, windows: Sequence[Window]) -> list[Recount]:
    """One query for the whole span of `windows` (consecutive, one cadence)."""
    params = {"project_ids": [project_id], **Span.of(windows).sql_params()}
    result = clickhouse.get_client().query(fingerprint_query(table, clickhouse.database, mode), parameters=params)
    by_index = {int(index): (int(rows), f"{int(fp):016x}") for index, rows, fp in result.result_rows}
    return [Recount(w.partition, *by_index.get(w.index, (0, EMPTY_FINGERPRINT))) for w in windows]
