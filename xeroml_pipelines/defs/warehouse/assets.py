"""One partitioned asset per loaded table, downstream of its export asset: `[<export>, warehouse, <table>]`.

It receives the exported partition's reference (not its rows) and has the warehouse load it
from the export's destination, idempotently (see `warehouses/merge.py`). A partition without a
data file loads nothing.
"""

import warnings
from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    asset,
)

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import (
    WAREHOUSE_POOL,
    destination_key,
    export_asset_key,
    partitions_for,
    resource,
    warehouse_asset_key,
    warehouse_key,
)
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.reference import ExportedPartition
from xeroml_pipelines.warehouses.base import Warehouse


def _build(export: ExportConfig, table: str, resources: Mapping[str, Any]) -> AssetsDefinition:
    dest_key, wh_key = destination_key(export), warehouse_key(export)
    assert export.warehouse is not None

    @asset(
        key=warehouse_asset_key(export, table),
        ins={"exported": AssetIn(key=export_asset_key(export, table))},
        partitions_def=partitions_for(export),
        group_name=f"{export.name}_warehouse",
        resource_defs={dest_key: resources[dest_key], wh_key: resources[wh_key]},
        kinds={export.warehouse.type},
        pool=WAREHOUSE_POOL,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=export.max_partitions_per_run),
        description=f"{table} of project {export.project_id!r} loaded into {export.warehouse.type}: "
        "latest live version per record.",
    )
    # `Any`: Dagster types reject unions; it is an ExportedPartition, or a dict of them for a range.
    def _load(context: AssetExecutionContext, exported: Any) -> MaterializeResult:
        source = resource(context.resources, dest_key, Destination)
        warehouse = resource(context.resources, wh_key, Warehouse)
        # one partition arrives bare, a range as a dict: loaded oldest first
        parts = [exported] if isinstance(exported, ExportedPartition) else [exported[k] for k in sorted(exported)]
        for part in parts:
            # the file's own columns and format, from its manifest: `exclude:` may have been
            # edited since this partition was exported
            result = warehouse.load(table, part.object_key, export.project_id, source, frozenset(part.excluded), part.file_format)
            context.log.info(f"{table} {part.partition}: {result.rows_in_file} lines merged into {result.target}")
            context.add_asset_metadata(
                {
                    "rows_in_file": MetadataValue.int(result.rows_in_file),
                    "live_rows": MetadataValue.int(result.live_rows),
                    "table": MetadataValue.text(result.target),
                    "source": MetadataValue.text(part.uri or "(no rows)"),
                },
                partition_key=part.partition,
            )
        return MaterializeResult()

    return _load


def build_warehouse_assets(export: ExportConfig, resources: Mapping[str, Any]) -> list[AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # backfill_policy
        return [_build(export, table, resources) for table in export.tables] if export.warehouse else []
