"""The verify job: one export's whole destination against every manifest (what `xeroml verify`
does). Its cost grows with the history (one manifest read per partition ever exported), so it is
not part of export runs: each export's schedule (`verify_cron`, weekly by default) runs it with
the export's name as config.

One job serves every export: a job per export added an op and a job to resolve per export when
the code location loads."""

from collections.abc import Sequence

from dagster import AssetObservation, Config, Failure, JobDefinition, MetadataValue, OpExecutionContext, RunConfig, job, op

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import export_asset_key, open_destination
from xeroml_pipelines.export.verify import verify

VERIFY_JOB = "verify_destination"
_OP = "verify_export_destination"


class VerifyConfig(Config):
    export: str


def verify_run_config(export: ExportConfig) -> RunConfig:
    return RunConfig(ops={_OP: VerifyConfig(export=export.name)})


def verify_job(exports: Sequence[ExportConfig]) -> JobDefinition:
    by_name = {e.name: e for e in exports}

    @op(name=_OP)
    def _verify(context: OpExecutionContext, config: VerifyConfig) -> None:
        export = by_name.get(config.export)
        if export is None:
            raise Failure(
                description=f"no export named {config.export!r}; the configuration has: {', '.join(by_name)}",
                allow_retries=False,
            )
        problems: list[str] = []
        with open_destination(export) as destination:
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
        name=VERIFY_JOB,
        description="Lists one export's whole destination and reads every manifest (as `xeroml verify`); "
        "the export's name is the run's config.",
    )
    def _job() -> None:
        _verify()

    return _job
