"""Asset checks. With every export run, on the run's partitions only (so a run costs the same
after years of history): their objects agree with their manifests (`files_match_manifests`) and
their manifests with ClickHouse now (`recount_matches_manifest`). The whole destination against
every manifest is the verify job's (verify.py), on its own schedule."""

import warnings
from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    PreviewWarning,
    asset_check,
)

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import destination_key, export_asset_key, partitions_for, resource
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.manifest import read_manifest
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.export.verify import VerifyReport, verify_partitions
from xeroml_pipelines.windows import windows_for


def _result(report: VerifyReport) -> AssetCheckResult:
    return AssetCheckResult(
        passed=report.ok,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(report.problems[:20]) or None,
        metadata={
            "manifests": MetadataValue.int(report.manifests),
            "objects": MetadataValue.int(report.objects),
            "problems": MetadataValue.int(len(report.problems)),
        },
    )


def _build_files_check(export: ExportConfig, table: str, resources: Mapping[str, Any]) -> AssetChecksDefinition:
    key = destination_key(export)
    partitions_def = partitions_for(export)

    @asset_check(
        asset=export_asset_key(export, table),
        name="files_match_manifests",
        partitions_def=partitions_def,
        resource_defs={key: resources[key]},
        description="For the partitions just exported: each manifest's object exists with its size, and a listing of "
        "the partition shows no data object without a manifest.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        destination = resource(context.resources, key, Destination)
        windows = windows_for(partitions_def, context.partition_keys)
        return _result(verify_partitions(destination, export.object_layout(), table, windows))

    return _check


def _build_recount_check(export: ExportConfig, table: str, resources: Mapping[str, Any]) -> AssetChecksDefinition:
    key = destination_key(export)
    partitions_def = partitions_for(export)

    @asset_check(
        asset=export_asset_key(export, table),
        name="recount_matches_manifest",
        partitions_def=partitions_def,
        required_resource_keys={"clickhouse"},
        resource_defs={key: resources[key]},
        description="Recounts the partition in ClickHouse (rows and fingerprint) and compares with its manifest: "
        "a difference means late or moved data, which the late-data sensor re-exports.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        destination = resource(context.resources, key, Destination)
        clickhouse = resource(context.resources, "clickhouse", ClickHouseResource)
        layout = export.object_layout()
        windows = windows_for(partitions_def, context.partition_keys)
        drifted, missing = [], []
        for counted, window in zip(recount(clickhouse, export.project_id, table, export.mode, windows), windows, strict=True):
            manifest = read_manifest(destination, layout.manifest_key(table, window))
            if manifest is None:
                missing.append(window.partition)
            elif counted.drifted_from(manifest):
                drifted.append(f"{window.partition}: {manifest.rows} rows exported, {counted.rows} now")
        return AssetCheckResult(
            passed=not drifted and not missing,
            severity=AssetCheckSeverity.WARN,
            description="; ".join(drifted + [f"{k}: not exported" for k in missing]) or None,
            metadata={
                "drifted_partitions": MetadataValue.int(len(drifted)),
                "missing_manifests": MetadataValue.int(len(missing)),
            },
        )

    return _check


def build_export_checks(export: ExportConfig, resources: Mapping[str, Any]) -> list[AssetChecksDefinition]:
    """The checks that run with an export, on its partitions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)  # partitioned asset checks
        return [
            check
            for table in export.tables
            for check in (_build_files_check(export, table, resources), _build_recount_check(export, table, resources))
        ]
