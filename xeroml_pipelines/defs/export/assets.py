"""One partitioned asset per exported table: `[<export name>, <table>]`.

An asset decides which rows belong to its partition and hands the IO manager a lazy stream;
the IO manager of the export's destination consumes it.
"""


import dataclasses
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pyarrow as pa
from dagster import AssetExecutionContext, BetaWarning, Failure, AssetKey, AssetsDefinition, BackfillPolicy, Backoff, Jitter, RetryPolicy, asset

from xeroml_pipelines.clickhouse.queries import query_for
from xeroml_pipelines.clickhouse.resource import ClickHouseResource, ClickHouseStreamError, is_permanent
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.partitions import partitions_for
from xeroml_pipelines.export.stream import ExportStream, Partitions
from xeroml_pipelines.export.window import Window

_DESCRIPTIONS = {
    "traces": "Latest version of each trace of the project, one JSON line per trace.",
    "observations": "Latest version of each observation (span, generation, event), one JSON line each.",
    "scores": "Latest version of each score, one JSON line each.",
    "sessions": "One JSON line per session with a trace in the traces partition, aggregated over all its live traces.",
}


# Limits how many export steps query ClickHouse at once, across runs (limit: dagster.yaml).
CLICKHOUSE_POOL = "xeroml_clickhouse"


def io_manager_key(export: ExportConfig) -> str:
    return f"{export.name}_io_manager"


def _build(export: ExportConfig, table: str) -> AssetsDefinition:
    deps = [AssetKey([export.name, "traces"])] if table == "sessions" and "traces" in export.tables else None

    @asset(
        key=AssetKey([export.name, table]),
        partitions_def=partitions_for(export),
        io_manager_key=io_manager_key(export),
        group_name=export.name,
        deps=deps,
        kinds={"clickhouse", "json"},
        description=_DESCRIPTIONS[table] + f" Project {export.project_id!r}, {export.mode} mode.",
        metadata={"project_id": export.project_id, "mode": export.mode, "cadence": export.cadence},
        # Transient destination/ClickHouse failures are retried; permanent ones raise
        # Failure(allow_retries=False) and stop at once.
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=export.max_partitions_per_run),
        pool=CLICKHOUSE_POOL,
        retry_policy=RetryPolicy(max_retries=export.retries, delay=export.retry_delay_s, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
        if export.retries
        else None,
    )
    def _export(context: AssetExecutionContext, clickhouse: ClickHouseResource) -> ExportStream:
        partitions_def = context.assets_def.partitions_def
        partitions = tuple(
            (key, Window(tw.start, tw.end))
            for key in context.partition_keys
            for tw in [partitions_def.time_window_for_partition_key(key)]
        )
        settled_at = partitions[-1][1].end + timedelta(minutes=export.lag_minutes)
        if datetime.now(timezone.utc) < settled_at:
            # Rows ingested with an event_ts in this window may still be in flight; a later
            # re-run of this partition picks them up.
            context.log.warning(
                f"{table} {partitions[-1][0]}: the window closes plus the {export.lag_minutes} min lag only at "
                f"{settled_at:%Y-%m-%d %H:%M} UTC; rows still in flight may be missing until this partition is re-run"
            )
        stream = ExportStream(
            export_name=export.name, project_id=export.project_id, table=table, mode=export.mode, partitions=partitions, open=None
        )
        sql = query_for(table, clickhouse.database, export.mode, clickhouse.batch_rows)
        return dataclasses.replace(stream, open=lambda group: _query(clickhouse, sql, stream, group))

    return _export


@contextmanager
def _query(clickhouse: ClickHouseResource, sql: str, stream: ExportStream, group: Partitions) -> Iterator[Iterator[pa.RecordBatch]]:
    """The batches of one query over consecutive partitions (one, or a group of a range).

    Records come in the table's key order whatever the group (reading follows the sort key, so
    the ORDER BY is a merge, not a sort of the range); each row's `_bucket` says which
    partition's file it goes to. One scan for a whole range reads every granule once,
    where a query per partition would re-read the granules partitions share."""
    window = Window(group[0][1].start, group[-1][1].end)
    params = {"project_id": stream.project_id, **window.sql_params(), "bucket_ms": group[0][1].step_ms}
    what = f"{stream.table} {group[0][0]}" + (f"..{group[-1][0]}" if len(group) > 1 else "") + f" (project {stream.project_id!r})"

    def batches() -> Iterator[pa.RecordBatch]:
        rows, started = 0, False
        try:
            with clickhouse.stream_arrow(sql, params) as result:
                started = True
                for batch in result:
                    rows += batch.num_rows
                    yield batch
        except Exception as e:
            cause = f"{type(e).__name__}: {e}"
            if is_permanent(e):
                raise Failure(
                    description=f"ClickHouse refused to read {what}: {cause}. Fix the ClickHouse settings "
                    "(credentials, grants, database) and re-run; nothing was published.",
                    allow_retries=False,
                ) from None
            if started:
                raise ClickHouseStreamError(
                    f"ClickHouse stopped sending {what} after {rows} rows: {cause}. "
                    "Nothing of these partitions was published; a retry reads them again whole."
                ) from e
            raise ClickHouseStreamError(f"ClickHouse could not be queried for {what}: {cause}") from e

    each = batches()
    try:
        yield each
    finally:
        each.close()  # ends the open query, if the consumer stopped early


def build_export_assets(export: ExportConfig) -> list[AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # backfill_policy: the range path is ours and tested
        return [_build(export, table) for table in export.tables]
