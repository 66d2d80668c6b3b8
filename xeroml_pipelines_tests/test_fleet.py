"""The fleet (issue 22): registered exports run by a fixed set of assets, one ClickHouse query per
table and window for every project of a shard, each project's rows only in its own destination,
files identical to a configured export's; a failing destination fails its project only, is
recorded, caught up oldest first, and disabled after repeated refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import XeroMLConfig
from xeroml_pipelines.defs.fleet.keys import fleet_asset_key
from xeroml_pipelines.defs.fleet.resources import SCOPE_KEY, FleetScope
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.registry.entries import parse_entry
from xeroml_pipelines.registry.runs import missed_of
from xeroml_pipelines.registry.store import Registry
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter

DAY = "2025-01-15"
TABLES = ("traces", "observations", "scores", "sessions")


def _seed(ch: ClickHouseResource, projects: list[str]) -> None:
    """The same record ids in every project, each project's content its own."""
    for p in projects:
        traces = [trace(f"t{i}", f"{DAY} 1{i}:00", project_id=p, name=f"{p}-trace", session_id="s1") for i in range(3)]
        insert(ch, "traces", traces)
        insert(ch, "observations", [observation(f"o{i}", f"t{i}", f"{DAY} 1{i}:00:01", project_id=p, name=p) for i in range(3)])


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.chdir(tmp_path)  # registered local destinations are relative to the working directory
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("XEROML_REGISTRY_URL", url)
    registry = Registry(url).create()
    yield registry
    registry.close()


def _register(registry: Registry, name: str, **fields: Any) -> None:
    raw = {"name": name, "project_id": name, "start_date": "2025-01-01", "destination": {"provider": "local", "path": name}}
    registry.put([parse_entry({**raw, **fields}, name)])


def _definitions(ch: ClickHouseResource, **fleet: Any):
    config = XeroMLConfig.model_validate(
        {
            "clickhouse": {"url": ch.url, "database": ch.database},
            "fleet": {"start_date": "2025-01-01", "retry_delay_s": 0, **fleet},
        }
    )
    return build_definitions(config)


class Queries:
    """Counts the export queries ClickHouse is sent (every export query streams Arrow)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ClickHouseResource.stream_arrow

        def counted(resource: ClickHouseResource, sql: str, parameters: dict) -> Any:
            self.count += 1
            return original(resource, sql, parameters)

        monkeypatch.setattr(ClickHouseResource, "stream_arrow", counted)


def _run(defs, cadence: str, shard: int, partition: str, instance=None, projects: list[str] | None = None, **kw: Any):
    assets = [defs.get_assets_def(fleet_asset_key(cadence, shard, TABLES[0]))]
    resources = dict(defs.resources)
    if projects is not None:
        resources[SCOPE_KEY] = FleetScope(projects=projects)
    selection = [fleet_asset_key(cadence, shard, t) for t in TABLES]
    return materialize(assets, partition_key=partition, resources=resources, instance=instance, selection=selection, **kw)


def _lines(root: Path, table: str, day: str = DAY) -> list[dict]:
    path = root / table / f"{day}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _metadata(instance: DagsterInstance, key: AssetKey, partition: str) -> dict:
    events = instance.fetch_materializations(key, limit=100).records
    event = next(e for e in events if e.asset_materialization and e.asset_materialization.partition == partition)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_one_query_per_table_serves_every_project_each_its_own_rows(
    ch: ClickHouseResource, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = ["acme", "globex", "initech"]
    _seed(ch, projects)
    for p in projects:
        _register(registry, p)
    queries = Queries(monkeypatch)
    instance = DagsterInstance.ephemeral()
    result = _run(_definitions(ch), "daily", 0, DAY, instance=instance)
    assert result.success
    assert queries.count == len(TABLES)  # tables x shards, not x projects
    for p in projects:
        traces = _lines(tmp_path / p, "traces")
        assert sorted(t["id"] for t in traces) == ["t0", "t1", "t2"]
        assert {t["project_id"] for t in traces} == {p} and {t["name"] for t in traces} == {f"{p}-trace"}
        assert {o["name"] for o in _lines(tmp_path / p, "observations")} == {p}
        (session,) = _lines(tmp_path / p, "sessions")
        assert session["project_id"] == p and session["trace_count"] == 3
        manifest = json.loads((tmp_path / p / "_manifests" / "scores" / f"{DAY}.json").read_text())
        assert manifest["rows"] == 0 and manifest["export"] == p and manifest["project_id"] == p
    meta = _metadata(instance, fleet_asset_key("daily", 0, "traces"), DAY)
    assert meta["exports_written"] == 3 and meta["exports_failed"] == 0 and meta["rows"] == 9


def test_a_project_s_files_are_those_its_configured_export_writes(
    ch: ClickHouseResource, registry: Registry, tmp_path: Path
) -> None:
    _seed(ch, ["acme", "globex"])
    for p in ("acme", "globex"):
        _register(registry, p, format="parquet" if p == "globex" else "jsonl")
    assert _run(_definitions(ch), "daily", 0, DAY).success
    configured = Exporter(ch, tmp_path / "configured", project_id="acme")
    configured.run(DAY, tables=TABLES)
    for table in TABLES:
        ours, theirs = tmp_path / "acme" / table / f"{DAY}.jsonl", configured.path(table, DAY)
        assert ours.exists() == theirs.exists(), table
        if ours.exists():
            assert ours.read_bytes() == theirs.read_bytes(), table
    assert (tmp_path / "globex" / "traces" / f"{DAY}.parquet").exists()


def test_a_failing_destination_fails_its_project_only_and_is_caught_up(
    ch: ClickHouseResource, registry: Registry, tmp_path: Path
) -> None:
    _seed(ch, ["acme", "globex"])
    _register(registry, "acme")
    _register(registry, "globex")
    (tmp_path / "globex").write_text("a file where the folder should be")  # globex's folder cannot be made
    instance = DagsterInstance.ephemeral()
    defs = _definitions(ch, retries=1)
    assert _run(defs, "daily", 0, DAY, instance=instance).success
    assert len(_lines(tmp_path / "acme", "traces")) == 3
    meta = _metadata(instance, fleet_asset_key("daily", 0, "traces"), DAY)
    assert meta["exports_written"] == 1 and list(meta["failed"]) == ["globex"]
    missed = missed_of(registry, "globex")
    assert sorted(m.table for m in missed) == sorted(TABLES) and {m.partition for m in missed} == {DAY}
    assert registry.get("globex").last_error and registry.get("globex").entry.enabled  # a transient failure

    (tmp_path / "globex").unlink()  # the owner fixes the destination
    acme_manifest = (tmp_path / "acme" / "_manifests" / "traces" / f"{DAY}.json").read_bytes()
    sensor = next(s for s in defs.sensors if s.name == "fleet_catch_up")
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        (request,) = list(sensor(context))
    assert request.partition_key == DAY
    assert request.run_config == {"resources": {SCOPE_KEY: {"config": {"projects": ["globex"]}}}}
    assert set(request.asset_selection) == {fleet_asset_key("daily", 0, t) for t in TABLES}
    job = defs.resolve_job_def(request.job_name or "fleet_daily")
    run = job.execute_in_process(
        run_config=request.run_config, partition_key=DAY, asset_selection=list(request.asset_selection), instance=instance
    )  # the run the daemon launches: the project is run configuration
    assert run.success
    assert len(_lines(tmp_path / "globex", "traces")) == 3
    assert missed_of(registry, "globex") == []
    # the others are not exported again
    assert (tmp_path / "acme" / "_manifests" / "traces" / f"{DAY}.json").read_bytes() == acme_manifest


def test_missed_windows_are_caught_up_oldest_first_a_few_runs_per_tick(
    ch: ClickHouseResource, registry: Registry, tmp_path: Path
) -> None:
    _register(registry, "acme")
    (tmp_path / "acme").write_text("not a folder")
    defs = _definitions(ch, retries=0, catch_up_runs=2)
    instance = DagsterInstance.ephemeral()
    for day in ("2025-01-17", "2025-01-15", "2025-01-16"):
        assert _run(defs, "daily", 0, day, instance=instance).success
    sensor = next(s for s in defs.sensors if s.name == "fleet_catch_up")
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        requests = list(sensor(context))
    assert [r.partition_key for r in requests] == ["2025-01-15", "2025-01-16"]


def test_a_per_project_run_exports_only_that_project_and_refuses_an_unknown_one(
    ch: ClickHouseResource, registry: Registry, tmp_path: Path
) -> None:
    _seed(ch, ["acme", "globex"])
    _register(registry, "acme")
    _register(registry, "globex")
    defs = _definitions(ch)
    assert _run(defs, "daily", 0, DAY, projects=["globex"]).success
    assert _lines(tmp_path / "globex", "traces") and not (tmp_path / "acme").exists()
    result = _run(defs, "daily", 0, DAY, projects=["nope"], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "no registered export or project 'nope'" in failure.event_specific_data.error.message
