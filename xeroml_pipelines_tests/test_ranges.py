"""Range runs (backfills): one run, one ClickHouse query per table for the whole range (or per
group of partitions, when the destination can hold fewer uploads open), one file per partition,
byte-identical to exporting each partition on its own."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.export import engine
from xeroml_pipelines.export.writer import PartitionWriter
from xeroml_pipelines_tests.support import Exporter, assert_same_exports

TABLES = ("traces", "observations", "scores", "sessions")
DAYS = [f"2025-01-{d}" for d in range(12, 19)]  # one empty day before the data, late arrivals after


@pytest.fixture
def demo(chdb_url: str, tmp_path) -> tuple[Exporter, Exporter]:
    ch = ClickHouseResource(url=chdb_url, database=f"r_{uuid.uuid4().hex[:10]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=3, traces_per_day=120))
    yield Exporter(ch, tmp_path / "per-day", project_id="demo"), Exporter(ch, tmp_path / "range", project_id="demo")
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


@pytest.mark.parametrize(
    "mode,group,file_format",
    [("incremental", None, "jsonl"), ("snapshot", None, "jsonl"), ("incremental", 3, "jsonl"), ("incremental", 3, "parquet")],
)
def test_range_run_equals_per_partition_runs(demo, mode: str, group: int | None, file_format: str, monkeypatch) -> None:
    per_day, ranged = demo
    for day in DAYS:
        per_day.run(day, mode=mode, format=file_format)

    queries = []
    real = ClickHouseResource.stream_arrow

    def counting(self, sql, parameters):
        queries.append(parameters)
        return real(self, sql, parameters)

    monkeypatch.setattr(ClickHouseResource, "stream_arrow", counting)
    if group:  # as a cloud destination with big upload buffers does
        monkeypatch.setattr(engine, "partitions_per_query", lambda destination, fmt: group)
    result = ranged.run(DAYS[0], until=DAYS[-1], mode=mode, format=file_format)
    # one scan per table for the range, or per group of `group` partitions, in time order
    starts = [q["window_start"][:10] for q in queries]
    assert starts == DAYS[:: group or len(DAYS)] * len(TABLES)

    fields = ("rows", "tombstones", "bytes", "sha256", "fingerprint", "window", "object_key", "parquet_schema")
    assert_same_exports(per_day, ranged, TABLES, DAYS, fields, ".parquet" if file_format == "parquet" else ".jsonl")
    assert ranged.manifest("traces", "2025-01-12")["rows"] == 0  # the empty day has its manifest

    rows = {
        (e.materialization.asset_key.path[-1], e.materialization.partition): e.materialization.metadata["rows"].value
        for e in result.get_asset_materialization_events()
    }
    assert len(rows) == len(TABLES) * len(DAYS)
    for (table, day), n in rows.items():
        assert n == per_day.manifest(table, day)["rows"]


def test_failure_mid_range_keeps_committed_partitions(demo, monkeypatch) -> None:
    _, ranged = demo
    real_commit = PartitionWriter.commit
    committed = []

    def commit_then_fail(self, clock, run_id):
        if self.partition == "2025-01-15":
            raise ConnectionError("destination lost")
        committed.append(self.partition)
        return real_commit(self, clock, run_id)

    monkeypatch.setattr(PartitionWriter, "commit", commit_then_fail)
    with pytest.raises(Exception, match="destination lost"):
        ranged.run(DAYS[0], until=DAYS[-1], tables=("traces",))
    assert committed == ["2025-01-12", "2025-01-13", "2025-01-14"]
    assert not ranged.path("traces", "2025-01-15").exists()
    assert not (ranged.out / "_staging").exists() or not list((ranged.out / "_staging").iterdir())
    monkeypatch.setattr(PartitionWriter, "commit", real_commit)
    ranged.run(DAYS[0], until=DAYS[-1], tables=("traces",))
    assert all((ranged.out / "_manifests" / "traces" / f"{d}.json").exists() for d in DAYS)


def test_open_row_groups_count_in_the_per_query_budget() -> None:
    """A range query keeps one upload buffer per open file, and a Parquet file also its open row group."""
    from xeroml_pipelines.destinations.local import LocalFolder
    from xeroml_pipelines.destinations.s3 import S3Bucket
    from xeroml_pipelines.export.formats import format_for
    from xeroml_pipelines.export.parquet import ROW_GROUP_BYTES

    jsonl, parquet = format_for("jsonl", "none", "traces", frozenset()), format_for("parquet", "zstd", "traces", frozenset())
    local, s3 = LocalFolder(path="/tmp/x"), S3Bucket(bucket="bucket", part_size_mib=64)
    assert engine.partitions_per_query(local, jsonl) is None  # nothing buffered: the whole range in one query
    assert engine.partitions_per_query(local, parquet) == engine.FILE_BUFFERS_BUDGET // ROW_GROUP_BYTES == 16
    assert engine.partitions_per_query(s3, jsonl) == 8
    assert engine.partitions_per_query(s3, parquet) == 5  # 512 MiB / (64 MiB part + 32 MiB row group)
