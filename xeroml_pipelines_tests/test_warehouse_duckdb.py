"""Warehouse loads into DuckDB: staging + MERGE, idempotent, order-independent, tombstones honoured."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, build_sensor_context, materialize

from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter, documentation


def _file(tmp_path: Path, name: str, lines: list[dict]) -> str:
    """Writes an export-shaped file into the local destination `SOURCE` reads; returns its key."""
    path = tmp_path / "dest" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return name


def _trace(id: str, event_ts: str, deleted: bool = False, **kw) -> dict:
    line = {
        "id": id,
        "project_id": "p1",
        "timestamp": "2025-01-15T10:00:00.000Z",
        "created_at": "2025-01-15T10:00:00.000Z",
        "updated_at": event_ts,
        "event_ts": event_ts,
        "is_deleted": deleted,
    }
    if not deleted:
        line.update({"name": kw.pop("name", "n"), "tags": ["a"], "metadata": {"k": "v"}, "input": "in"})
    line.update(kw)
    return line


def _rows(wh: DuckDBWarehouse) -> list[tuple]:
    with wh.connect() as con:
        return con.execute("SELECT id, name, event_ts FROM xeroml_traces ORDER BY id").fetchall()


def _source(tmp_path: Path) -> LocalFolder:
    return LocalFolder(path=str(tmp_path / "dest"))


def test_merge_keeps_the_latest_version_and_honours_tombstones(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    day1 = _file(
        tmp_path, "d1.jsonl", [_trace("a", "2025-01-15T10:00:00.000Z", name="a1"), _trace("b", "2025-01-15T10:00:00.000Z")]
    )
    day2 = _file(
        tmp_path,
        "d2.jsonl",
        [_trace("a", "2025-01-16T10:00:00.000Z", name="a2"), _trace("b", "2025-01-16T11:00:00.000Z", deleted=True)],
    )
    r = wh.load("traces", day1, "p1", _source(tmp_path))
    assert (r.rows_in_file, r.live_rows) == (2, 2)
    wh.load("traces", day1, "p1", _source(tmp_path))  # re-running a load never duplicates
    assert [x[0] for x in _rows(wh)] == ["a", "b"]
    wh.load("traces", day2, "p1", _source(tmp_path))
    assert [(x[0], x[1]) for x in _rows(wh)] == [("a", "a2")]
    wh.load("traces", day1, "p1", _source(tmp_path))  # an older file loaded again: neither regresses nor resurrects
    assert [(x[0], x[1]) for x in _rows(wh)] == [("a", "a2")]


def test_any_load_order_gives_the_same_table(tmp_path: Path) -> None:
    files = [
        _file(tmp_path, "1.jsonl", [_trace("a", "2025-01-15T10:00:00.000Z", name="a1"), _trace("c", "2025-01-15T10:00:00.000Z")]),
        _file(
            tmp_path, "2.jsonl", [_trace("a", "2025-01-16T10:00:00.000Z", deleted=True), _trace("b", "2025-01-16T10:00:00.000Z")]
        ),
        _file(
            tmp_path,
            "3.jsonl",
            [_trace("a", "2025-01-17T10:00:00.000Z", name="a3"), _trace("c", "2025-01-17T10:00:00.000Z", deleted=True)],
        ),
    ]
    results = set()
    for n, order in enumerate(itertools.permutations(files)):
        wh = DuckDBWarehouse(path=str(tmp_path / f"w{n}.duckdb"))
        for f in order:
            wh.load("traces", f, "p1", _source(tmp_path))
        results.add(tuple((x[0], x[1]) for x in _rows(wh)))
    assert results == {(("a", "a3"), ("b", "n"))}


def test_empty_partition_loads_nothing_and_succeeds(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    r = wh.load("sessions", None, "p1", _source(tmp_path))
    assert (r.rows_in_file, r.live_rows) == (0, 0)
    with wh.connect() as con:
        assert con.execute("SELECT count(*) FROM xeroml_sessions").fetchone() == (0,)


def test_failed_load_changes_nothing(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    wh.load("traces", _file(tmp_path, "ok.jsonl", [_trace("a", "2025-01-15T10:00:00.000Z")]), "p1", _source(tmp_path))
    bad = _file(tmp_path, "bad.jsonl", [_trace("b", "2025-01-16T10:00:00.000Z")])
    bad_path = tmp_path / "dest" / bad
    bad_path.write_text(bad_path.read_text() + '{"id": "c", "event_ts": "not a time"}\n')
    with pytest.raises(duckdb.Error):
        wh.load("traces", bad, "p1", _source(tmp_path))
    assert [x[0] for x in _rows(wh)] == ["a"]


def test_sensor_loads_each_partition_its_checked_export_wrote(exporter: Exporter, tmp_path: Path) -> None:
    """Each partition exported by a run that succeeded is loaded, once; one whose files check
    failed (a blocking check: its run failed) is not, neither by the sensor nor in its own run."""
    insert(exporter.ch, "traces", [trace(x, f"2025-01-{d} 10:00") for x, d in (("a", 15), ("b", 16), ("c", 17))])
    defs = build_definitions(exporter.config(warehouse={"type": "duckdb", "path": str(tmp_path / "w.duckdb")}))
    sensor = next(s for s in defs.sensors if s.name == "exp_warehouse_load")
    tables = ("traces", "sessions")
    exports = [defs.get_assets_def(AssetKey(["exp", t])) for t in tables]
    (checks,) = defs.asset_checks
    loads = [defs.get_assets_def(AssetKey(["exp", "warehouse", t])) for t in tables]

    def export(day: str, *keys: AssetKey, with_loads: bool = False):
        selection = AssetSelection.assets(*(keys or [a.key for a in exports]))  # with their checks
        if with_loads:
            selection |= AssetSelection.assets(*(a.key for a in loads))
        return materialize(
            [*exports, checks, *loads],
            selection=selection,
            partition_key=day,
            resources=defs.resources,
            instance=instance,
            raise_on_error=False,
        )

    with DagsterInstance.ephemeral() as instance:
        cursor = None

        def requested() -> list[tuple[str, list[str]]]:
            nonlocal cursor
            ctx = build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
            found = [(r.partition_key, sorted(k.path[-1] for k in r.asset_selection)) for r in sensor(ctx)]
            cursor = ctx.cursor
            return found

        assert export("2025-01-15").success and export("2025-01-16").success
        (exporter.out / "traces" / "2025-01-17.jsonl.gz").write_text('{"id": "left over by hand"}\n')
        stray = export("2025-01-17")
        assert not stray.success  # the blocking check fails the run; the files stay committed
        failed = {(e.asset_key.path[-1], e.check_name) for e in stray.get_asset_check_evaluations() if not e.passed}
        assert failed == {("traces", "files_match_manifests")}
        assert requested() == [("2025-01-15", ["sessions", "traces"]), ("2025-01-16", ["sessions", "traces"])]
        assert requested() == []  # nothing new

        # a re-export is loaded again; an export and its load in one run leaves nothing to load
        assert export("2025-01-15", exports[0].key).success
        assert requested() == [("2025-01-15", ["traces"])]
        (exporter.out / "traces" / "2025-01-17.jsonl.gz").unlink()
        assert export("2025-01-17", with_loads=True).success and requested() == []

        # in one run with its export, a load never follows a failed files check
        (exporter.out / "traces" / "2025-01-16.jsonl.gz").write_text('{"id": "left over by hand"}\n')
        both = export("2025-01-16", with_loads=True)
        loaded = {e.asset_key.path[-1] for e in both.get_asset_materialization_events() if "warehouse" in e.asset_key.path}
        assert not both.success and "traces" not in loaded and requested() == []


def test_warehouse_holds_exactly_the_latest_live_records(exporter: Exporter, tmp_path: Path) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="a1"),
            trace("b", "2025-01-15 11:00", session_id="s"),
            trace("c", "2025-01-15 12:00"),
            trace("a", "2025-01-16 09:00", timestamp="2025-01-15 10:00", name="a2"),
            trace("c", "2025-01-16 10:00", timestamp="2025-01-15 12:00", is_deleted=1),
            trace("x", "2025-01-15 10:00", project_id="other"),
        ],
    )
    insert(exporter.ch, "observations", [observation("o", "b", "2025-01-15 11:00", total_cost=2.0)])
    wh_path = tmp_path / "w.duckdb"
    defs = build_definitions(exporter.config(warehouse={"type": "duckdb", "path": str(wh_path)}))
    keys = [AssetKey(["exp", t]) for t in ("traces", "observations", "scores", "sessions")]
    assets = [defs.get_assets_def(k) for k in keys] + [
        defs.get_assets_def(AssetKey(["exp", "warehouse", k.path[-1]])) for k in keys
    ]
    for day in ("2025-01-15", "2025-01-16"):
        assert materialize(assets, partition_key=day, resources=defs.resources).success
    with duckdb.connect(str(wh_path)) as con:
        assert con.execute("SELECT id, name FROM xeroml_traces ORDER BY id").fetchall() == [("a", "a2"), ("b", "chat")]
        assert con.execute("SELECT id, trace_count, total_cost FROM xeroml_sessions").fetchall() == [("s", 1, 2.0)]
        assert con.execute("SELECT count(*) FROM xeroml_observations").fetchone() == (1,)


def test_range_run_loads_every_partition_in_order(exporter: Exporter, tmp_path: Path) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="a1"),
            trace("a", "2025-01-16 09:00", timestamp="2025-01-15 10:00", name="a2"),
            trace("b", "2025-01-16 10:00"),
            trace("b", "2025-01-17 10:00", timestamp="2025-01-16 10:00", is_deleted=1),
        ],
    )
    wh_path = tmp_path / "w.duckdb"
    exporter.run("2025-01-15", tables=("traces",), until="2025-01-17")
    defs = build_definitions(exporter.config(tables=("traces",), warehouse={"type": "duckdb", "path": str(wh_path)}))
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    result = materialize(
        [defs.get_assets_def(AssetKey(["exp", "traces"])), defs.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))],
        selection=[AssetKey(["exp", "warehouse", "traces"])],
        tags={ASSET_PARTITION_RANGE_START_TAG: "2025-01-15", ASSET_PARTITION_RANGE_END_TAG: "2025-01-17"},
        resources=defs.resources,
    )
    loaded = {
        e.materialization.partition: e.materialization.metadata["rows_in_file"].value
        for e in result.get_asset_materialization_events()
    }
    assert loaded == {"2025-01-15": 0, "2025-01-16": 1, "2025-01-17": 1}  # a moved to the 16th, b (deleted) to the 17th
    with duckdb.connect(str(wh_path)) as con:
        assert con.execute("SELECT id, name FROM xeroml_traces").fetchall() == [("a", "a2")]


def test_hive_layout_loads_and_reads_by_path(exporter: Exporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load asset reads hive-style keys, and README's DuckDB query over the folders works verbatim."""
    insert(
        exporter.ch,
        "traces",
        [trace("a", "2025-01-15 10:00", name="a1"), trace("b", "2025-01-15 11:00"), trace("a", "2025-01-16 09:00", name="a2")],
    )
    wh_path = tmp_path / "w.duckdb"
    config = exporter.config(tables=("traces",), layout="hive", warehouse={"type": "duckdb", "path": str(wh_path)})
    defs = build_definitions(config)
    assets = [defs.get_assets_def(AssetKey(["exp", "traces"])), defs.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))]
    for day in ("2025-01-15", "2025-01-16"):
        assert materialize(assets, partition_key=day, resources=defs.resources).success
    assert (exporter.out / "traces" / "date=2025-01-15" / "data.jsonl").is_file()
    with duckdb.connect(str(wh_path)) as con:
        assert con.execute("SELECT id, name FROM xeroml_traces ORDER BY id").fetchall() == [("a", "a2"), ("b", "chat")]

    readme = documentation()
    query = readme.split("```sql\n-- DuckDB, hive layout\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(exporter.out.parent)  # README runs it where `xeroml demo` writes ./xeroml-export
    rows = duckdb.connect().execute(query.replace("xeroml-export/", f"{exporter.out.name}/")).fetchall()
    assert [(str(d), n) for d, n in rows] == [("2025-01-15", 1), ("2025-01-16", 1)]  # a moved to the 16th
