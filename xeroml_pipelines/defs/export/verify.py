"""Per export: the verify job, the whole destination against every manifest (what `xeroml
verify` does). Its cost grows with the history (one manifest read per partition ever exported),
so it is not part of export runs: it runs on its own schedule (`verify_cron`, weekly by default)."""

from collections.abc import Mapping
from typing import Any

from dagster import AssetObservation, Failure, JobDefinition, MetadataValue, OpExecutionContext, job, op

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import destination_key, export_asset_key, resource
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.verify import verify


def verify_job(export: ExportConfig, resources: Mapping[str, Any]) -> JobDefinition:
    key = destination_key(export)

    @op(name=f"{export.name}_verify_destination", required_resource_keys={key})
    def _verify(context: OpExecutionContext) -> None:
        destination = resource(context.resources, key, Destination)
        problems: list[str] = []
        for table in export.tables:
            report = verify(destination, export.object_layout(), table)
            problems += report.problems
            # on each table's asset page, next to its materializations
            context.log_event(
                AssetObservation(
                    asset_key=export_asset_key(export, table),
                    description="Whole-destination verification: " + ("ok" if report.ok else "; ".join(report.problems[:20])),
                    metadata={
                        "verified_manifests": MetadataValue.int(report.manifests),
                        "verified_objects": MetadataValue.int(report.objects),
                        "verify_problems": MetadataValue.int(len(report.problems)),
                    },
                )
            )
        if problems:
            raise Failure(
                description=f"{len(problems)} problem(s) in {export.destination.location}: " + "; ".join(problems[:20]),
                metadata={"problems": MetadataValue.int(len(problems))},
                allow_retries=False,
            )

    @job(
        name=f"{export.name}_verify",
        resource_defs={key: resources[key]},
        description=f"Lists export {export.name!r}'s whole destination and reads every manifest (as `xeroml verify`).",
    )
    def _job() -> None:
        _verify()

    return _job
