"""Asset checks. With every export run, on the run's partitions only (so a run costs the same
after years of history): their objects agree with their manifests (`files_match_manifests`) and
their manifests with ClickHouse now (`recount_matches_manifest`). The whole destination against
every manifest is the verify job's (verify.py), on its own schedule.

An export's checks are one op (a multi-check, subsettable: a run executes the checks it
selects): Dagster's cost of loading a code location grows with its ops, and a check op per table
and kind made eight per export.
"""

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    PreviewWarning,
    multi_asset_check,
)

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import destination_key, export_asset_key, partitions_for, resource
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.manifest import read_manifest
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.export.verify import verify_partitions
from xeroml_pipelines.windows import Window, windows_for

FILES = "files_match_manifests"
RECOUNT = "recount_matches_manifest"
# A failed files check stops the loads (in the run, and the load sensor waits for the run's success).
BLOCKING = frozenset({FILES})
# The checks each export run includes, on its partitions (the whole destination is verify.py's job).
RUN_CHECKS = (FILES, RECOUNT)


def run_checks(export: ExportConfig, tables: Sequence[str] | None = None) -> list[AssetCheckKey]:
    """The keys of the checks a run of `tables` (all the export's) includes."""
    return [
        AssetCheckKey(export_asset_key(export, t), name)
        for t in (export.tables if tables is None else tables)
        for name in RUN_CHECKS
    ]


_DESCRIPTIONS = {
    FILES: "For the partitions just exported: each manifest's object exists with its size, and a listing of the "
    "partition shows no data object without a manifest.",
    RECOUNT: "Recounts the partition in ClickHouse (rows and fingerprint) and compares with its manifest: a "
    "difference means late or moved data, which the late-data sensor re-exports.",
}


def _files(export: ExportConfig, destination: Destination, table: str, windows: Sequence[Window]) -> AssetCheckResult:
    report = verify_partitions(destination, export.object_layout(), table, windows)
    return AssetCheckResult(
        asset_key=export_asset_key(export, table),
        check_name=FILES,
        passed=report.ok,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(report.problems[:20]) or None,
        metadata={
            "manifests": MetadataValue.int(report.manifests),
            "objects": MetadataValue.int(report.objects),
            "problems": MetadataValue.int(len(report.problems)),
        },
    )


def _recount(
    export: ExportConfig, destination: Destination, clickhouse: ClickHouseResource, table: str, windows: Sequence[Window]
) -> AssetCheckResult:
    layout = export.object_layout()
    drifted, missing = [], []
    for counted, window in zip(recount(clickhouse, export.project_id, table, export.mode, windows), windows, strict=True):
        manifest = read_manifest(destination, layout.manifest_key(table, window))
        if manifest is None:
            missing.append(window.partition)
        elif counted.drifted_from(manifest):
            drifted.append(f"{window.partition}: {manifest.rows} rows exported, {counted.rows} now")
    return AssetCheckResult(
        asset_key=export_asset_key(export, table),
        check_name=RECOUNT,
        passed=not drifted and not missing,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(drifted + [f"{k}: not exported" for k in missing]) or None,
        metadata={
            "drifted_partitions": MetadataValue.int(len(drifted)),
            "missing_manifests": MetadataValue.int(len(missing)),
        },
    )


def build_export_checks(export: ExportConfig, resources: Mapping[str, Any]) -> AssetChecksDefinition:
    """The checks that run with an export, on its partitions."""
    key = destination_key(export)
    partitions_def = partitions_for(export)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)  # partitioned asset checks
        specs = [
            AssetCheckSpec(
                check,
                asset=export_asset_key(export, t),
                description=text,
                partitions_def=partitions_def,
                # a load never follows files that disagree with their manifests
                blocking=check in BLOCKING,
            )
            for t in export.tables
            for check, text in _DESCRIPTIONS.items()
        ]

        @multi_asset_check(
            name=f"{export.name}_checks",
            specs=specs,
            can_subset=True,
            required_resource_keys={"clickhouse"},
            resource_defs={key: resources[key]},
        )
        def _checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
            destination = resource(context.resources, key, Destination)
            windows = windows_for(partitions_def, context.partition_keys)
            selected: set[AssetCheckKey] = set(context.selected_asset_check_keys)
            for table in export.tables:
                if AssetCheckKey(export_asset_key(export, table), FILES) in selected:
                    yield _files(export, destination, table, windows)
                if AssetCheckKey(export_asset_key(export, table), RECOUNT) in selected:
                    clickhouse = resource(context.resources, "clickhouse", ClickHouseResource)
                    yield _recount(export, destination, clickhouse, table, windows)

    return _checks
