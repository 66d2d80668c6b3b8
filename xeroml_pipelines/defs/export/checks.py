"""Asset checks: the destination agrees with the manifests (`files_match_manifests`), and each
partition's manifest agrees with ClickHouse now (`recount_matches_manifest`, per partition)."""

import warnings

from dagster import PreviewWarning, AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetKey, MetadataValue, asset_check

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.assets import io_manager_key
from xeroml_pipelines.defs.export.partitions import partitions_for
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.export.window import Window
from xeroml_pipelines.io_managers.base import verify


def _build(export: ExportConfig, table: str) -> AssetChecksDefinition:
    key = io_manager_key(export)

    @asset_check(
        asset=AssetKey([export.name, table]),
        name="files_match_manifests",
        required_resource_keys={key},
        description="Lists the destination: every manifest's object exists with its size, and no data object lacks a manifest.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        report = verify(getattr(context.resources, key), table)
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

    return _check


def _build_recount(export: ExportConfig, table: str) -> AssetChecksDefinition:
    io_key = io_manager_key(export)
    partitions_def = partitions_for(export)

    @asset_check(
        asset=AssetKey([export.name, table]),
        name="recount_matches_manifest",
        partitions_def=partitions_def,
        required_resource_keys={io_key, "clickhouse"},
        description="Recounts the partition in ClickHouse (rows and fingerprint) and compares with its manifest: "
        "a difference means late or moved data, which the late-data sensor re-exports.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        io = getattr(context.resources, io_key)
        partitions = [(k, _window(partitions_def, k)) for k in context.partition_keys]
        drifted, missing = [], []
        for counted, (key, window) in zip(recount(context.resources.clickhouse, export.project_id, table, export.mode, partitions), partitions):
            manifest = io.read_manifest(io.manifest_key(table, window))
            if manifest is None:
                missing.append(key)
            elif counted.drifted_from(manifest):
                drifted.append(f"{key}: {manifest.rows} rows exported, {counted.rows} now")
        return AssetCheckResult(
            passed=not drifted and not missing,
            severity=AssetCheckSeverity.WARN,
            description="; ".join(drifted + [f"{k}: not exported" for k in missing]) or None,
            metadata={"drifted_partitions": MetadataValue.int(len(drifted)), "missing_manifests": MetadataValue.int(len(missing))},
        )

    return _check


def _window(partitions_def, key: str) -> Window:
    tw = partitions_def.time_window_for_partition_key(key)
    return Window(tw.start, tw.end)


def build_export_checks(export: ExportConfig) -> list[AssetChecksDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)  # partitioned asset checks
        return [c for table in export.tables for c in (_build(export, table), _build_recount(export, table))]
