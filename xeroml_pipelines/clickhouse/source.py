"""One table's export query for a set of projects (one, or a fleet shard's): the rows of
consecutive windows as Arrow batches."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from xeroml_pipelines.clickhouse.errors import ClickHouseError, read_failure
from xeroml_pipelines.clickhouse.queries import records_query
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.sql.lines import Shape
from xeroml_pipelines.windows import Mode, Span, Window


@dataclass(frozen=True)
class TableQuery:
    clickhouse: ClickHouseResource
    table: str
    mode: Mode
    projects: tuple[str, ...]  # each row's `_project_index` is its project's position here
    exclude: frozenset[str] = frozenset()  # columns left out of the records

    def sql(self, shape: Shape) -> str:
        return records_query(self.table, self.clickhouse.database, self.mode, self.clickhouse.batch_rows, self.exclude, shape)

    @contextmanager
    def open(self, windows: Sequence[Window], shape: Shape) -> Iterator[Iterator[pa.RecordBatch]]:
        """The batches of one query over consecutive windows (one, or a group of a range), each
        record as a JSON line or as typed columns (`shape`).

        Records come in the table's key order whatever the group (reading follows the sort key,
        so the ORDER BY is a merge, not a sort of the range); each row's `_window_index` says
        which partition's file it goes to. One scan for a whole range reads every granule once,
        where a query per partition would re-read the granules partitions share."""
        span = Span.of(windows)
        batches = self._batches(span, self.sql(shape))
        try:
            yield batches
        finally:
            batches.close()  # ends the open query, if the consumer stopped early

    def _batches(self, span: Span, sql: str) -> Generator[pa.RecordBatch, None, None]:
        what = f"{self.table} {span.label} ({_projects(self.projects)})"
        rows: int | None = None
        try:
            with self.clickhouse.stream_arrow(sql, {"project_ids": list(self.projects), **span.sql_params()}) as result:
                rows = 0
                for batch in result:
                    rows += batch.num_rows
                    yield batch
        except ClickHouseError:
            raise  # already in our words (an unreachable server)
        except Exception as e:
            raise read_failure(what, e, rows) from e


def _projects(projects: tuple[str, ...]) -> str:
    if len(projects) == 1:
        return f"project {projects[0]!r}"
    return f"{len(projects)} projects"
