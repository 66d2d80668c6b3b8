"""The fleet's assets: per cadence and shard one multi-asset, a table each, whose partition is a
window for every registered export of that cadence and shard. Their number depends on the
configuration (cadences × shards × tables), never on how many projects are registered."""

import json
import warnings
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    multi_asset,
)

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.defs.alerts.resources import SlackWebhook
from xeroml_pipelines.defs.alerts.sensors import ALERT_WEBHOOK_KEY
from xeroml_pipelines.defs.fleet.keys import fleet_asset_key, fleet_op_name, fleet_partitions
from xeroml_pipelines.defs.fleet.resources import REGISTRY_KEY, SCOPE_KEY, FleetScope, RegistryResource
from xeroml_pipelines.defs.keys import CLICKHOUSE_POOL, resource
from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.export.fleet import covers
from xeroml_pipelines.fleet.run import FleetRun, run_fleet
from xeroml_pipelines.fleet.targets import window_span
from xeroml_pipelines.registry.runs import Selection, record_run, select_due
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import Cadence, Window, windows_for

# failed exports listed by name in a materialization's metadata; the rest are counted
_LISTED = 200


def _build(fleet: FleetConfig, cadence: Cadence, shard: int, alerts: bool) -> AssetsDefinition:
    partitions_def = fleet_partitions(fleet, cadence)
    keys = {table: fleet_asset_key(cadence, shard, table) for table in fleet.tables}
    specs = [
        AssetSpec(
            key=keys[table],
            description=f"{exported_table(table).description} Every registered {cadence} export of shard {shard} "
            f"(of {fleet.shards}) that exports {table}, each into its own destination.",
            group_name=f"fleet_{cadence}",
            kinds={"clickhouse"},
            metadata={"cadence": cadence, "shard": shard, "shards": fleet.shards},
            skippable=True,  # a per-project run skips the shards that do not hold the project
        )
        for table in fleet.tables
    ]

    @multi_asset(
        name=fleet_op_name(cadence, shard),
        specs=specs,
        partitions_def=partitions_def,
        can_subset=True,
        pool=CLICKHOUSE_POOL,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=fleet.max_partitions_per_run),
        # ClickHouse's transient faults fail the step and are retried; a destination's are its export's
        retry_policy=RetryPolicy(max_retries=fleet.retries, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
        if fleet.retries
        else None,
        required_resource_keys={"clickhouse", REGISTRY_KEY, SCOPE_KEY} | ({ALERT_WEBHOOK_KEY} if alerts else set()),
    )
    def _fleet(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        clickhouse = resource(context.resources, "clickhouse", ClickHouseResource)
        registry = resource(context.resources, REGISTRY_KEY, RegistryResource).open()
        scope = resource(context.resources, SCOPE_KEY, FleetScope)
        windows = windows_for(partitions_def, context.partition_keys)
        tables = [t for t in fleet.tables if keys[t] in context.selected_asset_keys]
        try:
            selection = select_due(registry, cadence, shard, fleet.shards, scope.projects)
            run = run_fleet(clickhouse, registry, selection, tables, windows, cadence, fleet, context.run_id, context.log.info)
            disabled = record_run(
                registry,
                cadence,
                run.records,
                _missed_while_disabled(selection, tables, windows, cadence),
                fleet.disable_after,
                fleet.retry_delay_s,
            )
        except ConfigError as e:
            raise Failure(description=str(e), allow_retries=False) from None
        finally:
            registry.close()
        for name, reason in disabled.items():
            context.log.warning(f"registered export {name!r} {reason}")
        if disabled and alerts:
            _alert(context, cadence, shard, disabled)
        context.log.info(f"shard {shard}: {len(selection.exporting)} export(s), {run.queries} ClickHouse queries")
        for table in tables:
            if scope.projects and not any(table in r.entry.export.tables for r in selection.exporting):
                continue  # nothing of this run's projects here
            for window in windows:
                context.add_asset_metadata(
                    _metadata(run, table, window, selection), asset_key=keys[table], partition_key=window.partition
                )
            yield MaterializeResult(asset_key=keys[table])

    return _fleet


def _missed_while_disabled(
    selection: Selection, tables: list[str], windows: tuple[Window, ...], cadence: Cadence
) -> dict[str, list[tuple[str, str]]]:
    """The windows of exports the platform disabled: recorded, so that enabling one catches up."""
    missed = {}
    for registered in selection.disabled_by_platform:
        first, last = window_span(registered, cadence)
        exported = registered.entry.export.tables
        missed[registered.name] = [(t, w.partition) for t in tables if t in exported for w in windows if covers(first, last, w)]
    return missed


def _metadata(run: FleetRun, table: str, window: Window, selection: Selection) -> dict[str, MetadataValue]:
    report = run.reports[(table, window.partition)]
    failed = dict(sorted(report.failed.items())[:_LISTED])
    disabled = {r.name: r.disabled_reason or "" for r in selection.disabled_by_platform[:_LISTED]}
    return {
        "exports_written": MetadataValue.int(len(report.written)),
        "exports_failed": MetadataValue.int(len(report.failed)),
        "rows": MetadataValue.int(sum(report.written.values())),
        "failed": MetadataValue.json(failed),
        "disabled_by_platform": MetadataValue.json(disabled),
        "clickhouse_queries": MetadataValue.int(run.queries),
        "window_start": MetadataValue.text(window.as_dict()["start"]),
        "window_end": MetadataValue.text(window.as_dict()["end"]),
    }


def _alert(context: AssetExecutionContext, cadence: str, shard: int, disabled: dict[str, str]) -> None:
    text = f"xeroml fleet ({cadence}, shard {shard}): disabled {len(disabled)} export(s): " + "; ".join(
        f"{name}: {reason}" for name, reason in sorted(disabled.items())
    )
    try:
        resource(context.resources, ALERT_WEBHOOK_KEY, SlackWebhook).post(text)
    except Exception as e:  # noqa: BLE001 - the exports are written; the alert's failure is logged
        context.log.warning(f"the alert webhook failed ({type(e).__name__}); the disabled exports: {json.dumps(disabled)}")


def build_fleet_assets(fleet: FleetConfig, alerts: bool) -> list[AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # backfill_policy: the range path is ours and tested
        return [_build(fleet, cadence, shard, alerts) for cadence in fleet.cadences for shard in range(fleet.shards)]
