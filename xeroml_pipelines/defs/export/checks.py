"""Asset checks: what is in the destination agrees with the manifests (see `io_managers.base.verify`)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetKey, MetadataValue, asset_check

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.assets import io_manager_key
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


def build_export_checks(export: ExportConfig) -> list[AssetChecksDefinition]:
    return [_build(export, table) for table in export.tables]
