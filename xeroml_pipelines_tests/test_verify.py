"""`verify`: the destination listed against the manifests, on every provider, as a function, an
asset check on a run's partitions, the verify job over the whole destination, and a CLI command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import yaml
from dagster import AssetCheckKey, AssetKey, AssetSelection, build_schedule_context, materialize

from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.verify import verify, verify_partitions
from xeroml_pipelines.windows import Window
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.providers import PREFIX, Provider
from xeroml_pipelines_tests.support import Exporter


def test_verify_finds_missing_orphan_and_resized_objects(exporter: Exporter, provider: Provider) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00"), trace("b", "2025-01-16 10:00")])
    for day in ("2025-01-14", "2025-01-15", "2025-01-16"):
        exporter.run(day, tables=("traces",), destination=provider.destination())
    export = exporter.config(destination=provider.destination()).exports[0]
    with export.destination.process_config_and_initialize_cm() as destination:
        layout = Layout(prefix=destination.prefix)
        report = verify(destination, layout, "traces", deep=True)
        assert report.ok and report.manifests == 3 and report.objects == 2

        provider.put(f"{PREFIX}/traces/2025-01-15.jsonl", b'{"id":"a"}\n')  # rewritten behind our back
        provider.put(f"{PREFIX}/traces/2025-01-20.jsonl", b'{"id":"x"}\n')  # no manifest
        provider.put(f"{PREFIX}/traces/2025-01-21.jsonl", b"")  # an emptied stale file is fine
        report = verify(destination, layout, "traces")
    assert len(report.problems) == 2, report.problems
    assert any("2025-01-15.jsonl" in p and "manifest says" in p for p in report.problems)
    assert any("2025-01-20.jsonl" in p and "without a manifest" in p for p in report.problems)


def test_asset_check_reports_through_dagster_on_the_runs_partitions_only(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    defs = build_definitions(exporter.config(tables=("traces",)))
    asset = defs.get_assets_def(AssetKey(["exp", "traces"]))
    (checks,) = defs.asset_checks
    selection = AssetSelection.assets(asset.key).without_checks() | AssetSelection.checks(
        AssetCheckKey(asset.key, "files_match_manifests")
    )
    result = materialize([asset, checks], selection=selection, partition_key="2025-01-15", resources=defs.resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["manifests"].value == 1

    (exporter.out / "traces" / "2025-01-15.jsonl.gz").write_bytes(b"{}\n")  # in the partition: seen
    (exporter.out / "traces" / "2025-01-09.jsonl").write_bytes(b"{}\n")  # another partition: the verify job's
    result = materialize(
        [asset, checks], selection=selection, partition_key="2025-01-15", resources=defs.resources, raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not result.success  # a blocking check: its failure fails the run
    assert not evaluation.passed and evaluation.metadata["problems"].value == 1
    assert "2025-01-15.jsonl.gz: data object without a manifest" in evaluation.description
    assert "2025-01-09" not in evaluation.description


def test_a_runs_check_reads_its_own_partitions_whatever_the_history(exporter: Exporter, monkeypatch) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00"), trace("b", "2025-01-16 10:00")])
    for day in ("2025-01-14", "2025-01-15", "2025-01-16"):
        exporter.run(day, tables=("traces",))
    (exporter.out / "traces" / "2025-01-15.jsonl").write_bytes(b'{"id":"a"}\n')  # resized behind our back
    (exporter.out / "traces" / "2025-01-16.jsonl").unlink()
    listed: list[str] = []
    read: list[str] = []
    monkeypatch.setattr(LocalFolder, "list_objects", _recording(LocalFolder.list_objects, listed))
    monkeypatch.setattr(LocalFolder, "read_bytes", _recording(LocalFolder.read_bytes, read))
    export = exporter.config(tables=("traces",)).exports[0]
    windows = [
        Window(
            d, datetime.fromisoformat(d).replace(tzinfo=UTC), datetime.fromisoformat(d).replace(tzinfo=UTC) + timedelta(days=1)
        )
        for d in ("2025-01-15", "2025-01-16")
    ]
    with export.destination.process_config_and_initialize_cm() as destination:
        report = verify_partitions(destination, export.object_layout(), "traces", windows)
    assert len(report.problems) == 2, report.problems
    assert any("2025-01-15.jsonl" in p and "manifest says" in p for p in report.problems)
    assert any("2025-01-16.jsonl: missing" in p for p in report.problems)
    # one listing and one manifest per partition of the run; 2025-01-14 is never read
    assert listed == ["traces/2025-01-15.", "traces/2025-01-16."]
    assert read == ["_manifests/traces/2025-01-15.json", "_manifests/traces/2025-01-16.json"]


def _recording(method, calls: list[str]):
    def recorded(self, key: str, *args, **kwargs):
        calls.append(key)
        return method(self, key, *args, **kwargs)

    return recorded


def test_the_verify_job_checks_the_whole_destination_on_its_own_schedule(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    defs = build_definitions(exporter.config(tables=("traces",)))
    schedule = defs.get_schedule_def("exp_verify_schedule")
    assert schedule.cron_schedule == "30 3 * * 0" and schedule.job_name == "verify_destination"
    run_config = schedule.evaluate_tick(build_schedule_context()).run_requests[0].run_config
    assert run_config["ops"] == {"verify_export_destination": {"config": {"export": "exp"}}}
    job = defs.get_job_def("verify_destination")
    ok = job.execute_in_process(run_config=run_config)
    (observation,) = [e.asset_observation_data.asset_observation for e in ok.all_events if e.is_asset_observation]
    assert ok.success and observation.metadata["verify_problems"].value == 0

    (exporter.out / "traces" / "2025-01-09.jsonl").write_bytes(b"{}\n")  # a partition no run looks at
    bad = job.execute_in_process(run_config=run_config, raise_on_error=False)
    assert not bad.success
    (failure,) = bad.get_step_failure_events()
    assert "1 problem(s)" in failure.step_failure_data.user_failure_data.description
    assert "2025-01-09.jsonl: data object without a manifest" in failure.step_failure_data.user_failure_data.description
    unknown = job.execute_in_process(
        run_config={"ops": {"verify_export_destination": {"config": {"export": "nope"}}}}, raise_on_error=False
    )
    (failure,) = unknown.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == "no export named 'nope'; the configuration has: exp"
    without = build_definitions(exporter.config(tables=("traces",), verify_cron=None))
    assert "exp_verify_schedule" not in {s.name for s in without.schedules}


def test_cli_verify(exporter: Exporter, tmp_path) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    config = exporter.config(tables=("traces",)).model_dump(mode="json")
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "XEROML_CONFIG": str(path)}
    # a separate process: chDB is not opened by verify, only the destination is read
    ok = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert "exp/traces: 1 manifests, 1 objects: ok" in ok.stdout
    (exporter.out / "traces" / "2025-01-15.jsonl").unlink()
    bad = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "missing" in bad.stdout
