"""The export IO manager: ties a destination and the export engine to Dagster.

`handle_output` writes the asset's stream (one file and manifest per partition of the run) and
reports each partition's numbers as its own metadata; `load_input` hands a downstream asset a
reference to each partition (URI, rows, bytes), read from its manifest, never the data.
"""

from __future__ import annotations

from dagster import ConfigurableIOManager, Failure, InputContext, MetadataValue, OutputContext, TimeWindowPartitionsDefinition

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.errors import ExportError
from xeroml_pipelines.export import engine
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.manifest import Manifest, read_manifest
from xeroml_pipelines.export.reference import ExportedPartition
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.windows import windows_for


class ExportIOManager(ConfigurableIOManager):
    destination: Destination  # each provider's IO manager narrows the type (local.py, s3.py, gcs.py, azure.py)
    layout: Layout  # the export's own (ExportConfig.object_layout), as its checks, sensors and verify use it

    def handle_output(self, context: OutputContext, obj: ExportStream) -> None:
        if not isinstance(obj, ExportStream):
            raise TypeError(f"{type(self).__name__} stores ExportStream outputs, got {type(obj).__name__}")
        partitions = [w.partition for w in obj.windows]
        if partitions != list(context.asset_partition_keys):
            raise ValueError(f"stream partitions {partitions} do not match the run's {context.asset_partition_keys}")
        try:
            manifests = engine.export(self.destination, self.layout, obj, context.run_id)
        except ExportError as e:
            if e.permanent:
                raise Failure(description=str(e), allow_retries=False) from None
            raise
        for m in manifests:
            # partition-scoped: a range run still reports each partition's own numbers. Not public:
            # per-partition metadata is public only on the op's AssetExecutionContext, and an
            # OutputContext's add_output_metadata takes no partition (Dagster 1.13).
            context.step_context.add_asset_metadata(_metadata(m), partition_key=m.partition)
            context.log.info(
                f"{obj.table} {m.partition}: {m.rows} rows ({m.tombstones} tombstones), "
                f"{m.bytes} bytes -> {m.uri or 'no data object (zero rows)'}"
            )

    def load_input(self, context: InputContext) -> ExportedPartition | dict[str, ExportedPartition]:
        table = context.asset_key.path[-1]
        partitions_def = context.asset_partitions_def
        assert isinstance(partitions_def, TimeWindowPartitionsDefinition)
        loaded = {}
        for window in windows_for(partitions_def, context.asset_partition_keys):
            manifest_key = self.layout.manifest_key(table, window)
            manifest = read_manifest(self.destination, manifest_key)
            if manifest is None:
                # Dagster's allow_missing_partitions relies on FileNotFoundError
                where = self.destination.uri(manifest_key)
                raise FileNotFoundError(f"no export manifest for {table} partition {window.partition} at {where}")
            loaded[window.partition] = ExportedPartition.of(manifest, self.destination.uri(manifest_key))
        # One upstream partition gives the bare object, several a dict by partition key.
        return next(iter(loaded.values())) if len(loaded) == 1 else loaded


def _metadata(m: Manifest) -> dict[str, MetadataValue]:
    return {
        "uri": MetadataValue.text(m.uri or "(no rows: no data object)"),
        "rows": MetadataValue.int(m.rows),
        "tombstones": MetadataValue.int(m.tombstones),
        "invalid_utf8_values": MetadataValue.int(m.invalid_utf8),
        "bytes": MetadataValue.int(m.bytes),
        "uncompressed_bytes": MetadataValue.int(m.uncompressed_bytes),
        "query_seconds": MetadataValue.float(m.query_seconds),
        "window_start": MetadataValue.text(m.window["start"]),
        "window_end": MetadataValue.text(m.window["end"]),
        "sha256": MetadataValue.text(m.sha256 or ""),
    }
