"""The CLI as a person at a terminal meets it: every mistake is one or two plain lines and a
documented exit code (2: the command or configuration; 1: an export failed), never a traceback."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
import yaml

from xeroml_pipelines.clickhouse.resource import ClickHouseResource

DAY = "2025-01-14"


def _xeroml(cwd: Path, config: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME")}
    if config:
        env["XEROML_CONFIG"] = str(config)
    exe = Path(sys.executable).with_name("xeroml")
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _plain(done: subprocess.CompletedProcess, code: int, max_lines: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout and "Stack Trace" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= max_lines, done.stderr
    return done.stderr


def _config(tmp_path: Path, clickhouse: dict[str, str] | None = None, **export: object) -> Path:
    path = tmp_path / "xeroml.yaml"
    fields = {"name": "main", "project_id": "demo", "start_date": "2025-01-13", "retries": 0}
    fields["destination"] = {"provider": "local", "path": str(tmp_path / "out")}
    fields.update(export)
    clickhouse = clickhouse or {"url": f"chdb://{tmp_path / 'db'}"}
    path.write_text(yaml.safe_dump({"clickhouse": clickhouse, "exports": [fields]}))
    return path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    done = _xeroml(root, _config(root), "seed", "--days", "2", "--traces-per-day", "40")
    assert done.returncode == 0, done.stderr
    return root


def test_broken_configuration_is_named_plainly_and_help_still_works(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "clickhouse: {url: 'chdb:///tmp/x'}\nexports:\n  - {name: e, project_id: p, start_date: 2025-13-01,\n"
        "     destination: {provider: s4}, formt: parquet}\n"
    )
    out = _plain(_xeroml(tmp_path, bad, "export", DAY), 2, max_lines=4)
    assert "exports.0.destination.provider: 's4' is not one of: local, s3, gcs, azure" in out
    assert "exports.0.formt: unknown field; did you mean 'format'?" in out
    assert "exports.0.start_date: '2025-13-01' is not a date (YYYY-MM-DD)" in out
    for args in (["--help"], ["export", "--help"]):
        done = _xeroml(tmp_path, bad, *args)
        assert done.returncode == 0 and "usage: xeroml" in done.stdout and not done.stderr
    out = _plain(_xeroml(tmp_path, tmp_path / "missing.yaml", "export", DAY), 2)
    assert "missing.yaml" in out


def test_mistakes_in_the_command_are_errors_not_silent_successes(seeded: Path) -> None:
    config = seeded / "xeroml.yaml"
    out = _plain(_xeroml(seeded, config, "export", DAY, "--export", "nosuch"), 2)
    assert "no export named 'nosuch'; the configuration has: main" in out
    out = _plain(_xeroml(seeded, config, "export", "2025-01-16", DAY), 2)
    assert "ends before it starts" in out
    for day in ("2024-12-01", "2099-01-01"):
        out = _plain(_xeroml(seeded, config, "export", day), 2)
        assert re.search(r"its partitions are 2025-01-13 \.\. \d{4}-\d{2}-\d{2}", out), out
    out = _plain(_xeroml(seeded, config, "export", "2025-13-01"), 2)
    assert "'2025-13-01' is not a date (YYYY-MM-DD)" in out
    assert not (seeded / "out").exists()  # nothing ran


def test_a_failed_export_prints_one_line_with_its_cause(seeded: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the export's folder should be")
    config = _config(tmp_path, destination={"provider": "local", "path": str(blocked)})
    text = config.read_text().replace(str(tmp_path / "db"), str(seeded / "db"))
    config.write_text(text)
    done = _xeroml(tmp_path, config, "export", DAY, "--export", "main")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(f"main {DAY}:")]
    assert line.startswith(f"main {DAY}: FAILED: ") and str(blocked) in line and "[1/1]" in line
    verbose = _xeroml(tmp_path, config, "export", DAY, "--verbose")
    assert verbose.returncode == 1 and "Stack Trace" in verbose.stderr


def test_an_export_before_the_demo_is_seeded_says_to_run_the_demo(tmp_path: Path) -> None:
    """On the embedded defaults an empty database has no XeroML tables: the failure says what to
    do in its line, without ClickHouse's quote of the whole query."""
    done = _xeroml(tmp_path, None, "export", DAY)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    failed = [x for x in done.stdout.splitlines() if ": FAILED: " in x]
    assert failed and all("run `xeroml demo` first" in x and "In scope" not in x and len(x) < 600 for x in failed), failed


def test_progress_lines_count_partitions_rows_and_bytes(seeded: Path) -> None:
    done = _xeroml(seeded, seeded / "xeroml.yaml", "export", "2025-01-13", DAY)
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stdout.splitlines() if x.startswith("main 2025-")]
    assert [x.split(":")[0] for x in lines] == ["main 2025-01-13", f"main {DAY}"]
    progress = [re.search(r"\[(\d)/2\] ([\d,]+) rows, ([\d.]+) MB in [\d.,]+ s \([\d,]+ rows/s\)$", x) for x in lines]
    assert all(progress), lines
    first, second = (int(m.group(2).replace(",", "")) for m in progress if m)
    assert 0 < first < second


def test_a_partition_line_is_printed_when_it_commits_not_when_the_run_ends(
    ch: ClickHouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is held open after its work is done until the first partition's line has been
    printed: the line must come from the run's commits as they land, not from its result."""
    import dagster

    from xeroml_pipelines.cli.export import run_exports
    from xeroml_pipelines.config.loading import parse_config
    from xeroml_pipelines.demo.generate import DemoSpec, generate

    # In this process, on the session's engine: chDB opens one engine path per process, so
    # `seeded`'s own database (other tests reach it through subprocesses) cannot be opened here.
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=40))
    config_path = _config(tmp_path, clickhouse={"url": ch.url, "database": ch.database})

    printed = threading.Event()
    seen_before_return: list[bool] = []
    real_execute = dagster.JobDefinition.execute_in_process

    def execute_then_hold(job, *args, **kwargs):
        result = real_execute(job, *args, **kwargs)
        seen_before_return.append(printed.wait(timeout=60))
        return result

    class Watch(io.StringIO):
        def write(self, text: str) -> int:
            if ": ok traces=" in text:
                printed.set()
            return super().write(text)

    monkeypatch.setattr(dagster.JobDefinition, "execute_in_process", execute_then_hold)
    monkeypatch.chdir(tmp_path)
    watch = Watch()
    monkeypatch.setattr(sys, "stdout", watch)
    config = parse_config(config_path.read_text(), "xeroml.yaml")
    assert run_exports(config, None, date(2025, 1, 13), date(2025, 1, 14)) == 0, watch.getvalue()
    assert seen_before_return == [True], "no partition line before the export run returned"


def test_cli_runs_are_the_export_jobs_runs(seeded: Path) -> None:
    """In the UI a CLI run is a run of the export's job (as a schedule's or a backfill's is), with its range."""
    from dagster import AssetKey, DagsterInstance

    done = _xeroml(seeded, seeded / "xeroml.yaml", "export", "2025-01-13", DAY)
    assert done.returncode == 0, done.stderr
    with DagsterInstance.from_config(str(seeded / ".dagster_home")) as instance:
        (run,) = instance.get_runs(limit=1)
    assert run.job_name == "export_daily_from_2025_01_13"  # the job of the export's partitions
    with DagsterInstance.from_config(str(seeded / ".dagster_home")) as instance:
        materialized = {
            e.dagster_event.asset_key
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        }
    assert materialized == {AssetKey(["main", t]) for t in ("traces", "observations", "scores", "sessions")}
    assert run.tags["dagster/asset_partition_range_start"] == "2025-01-13"
    assert run.tags["dagster/asset_partition_range_end"] == DAY


def test_cli_runs_include_the_asset_checks(seeded: Path) -> None:
    """As a scheduled run does: a stray object in an exported partition fails files_match_manifests, and says so."""
    config = seeded / "xeroml.yaml"
    assert _xeroml(seeded, config, "export", DAY).returncode == 0
    stray = seeded / "out" / "traces" / f"{DAY}.jsonl.gz"
    stray.write_text('{"id": "left over by hand"}\n')
    try:
        done = _xeroml(seeded, config, "export", DAY)
    finally:
        stray.unlink()
    assert done.returncode == 0, done.stderr  # a check reports, it does not undo the export
    # the traces files' blocking check holds back their loads, not the other tables' exports (sessions
    # read the traces table in ClickHouse, not the traces files)
    (ok,) = [x for x in done.stdout.splitlines() if x.startswith(f"main {DAY}: ok ")]
    assert "sessions=" in ok and "observations=" in ok, done.stdout
    (line,) = [x for x in done.stdout.splitlines() if "check traces files_match_manifests failed" in x]
    assert f"{DAY}.jsonl.gz: data object without a manifest" in line
    assert "recount_matches_manifest failed" not in done.stdout


def test_a_failed_files_check_is_never_loaded(seeded: Path) -> None:
    """With a warehouse: the partition whose files disagree with their manifests is exported and
    reported, its load skipped, and the command fails; once the stray object goes, it loads."""
    fields = {"name": "main", "project_id": "demo", "start_date": "2025-01-13", "retries": 0}
    fields |= {"destination": {"provider": "local", "path": str(seeded / "out-wh")}}
    fields |= {"warehouse": {"type": "duckdb", "path": str(seeded / "checked.duckdb")}}
    config = seeded / "with-warehouse.yaml"
    config.write_text(yaml.safe_dump({"clickhouse": {"url": f"chdb://{seeded / 'db'}"}, "exports": [fields]}))
    assert _xeroml(seeded, config, "export", DAY).returncode == 0
    stray = seeded / "out-wh" / "traces" / f"{DAY}.jsonl.gz"
    stray.write_text('{"id": "left over by hand"}\n')
    done = _xeroml(seeded, config, "export", DAY)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "check traces files_match_manifests failed" in done.stdout
    assert f"main {DAY} .. {DAY}: load skipped: files_match_manifests failed" in done.stdout
    assert "loaded into duckdb" not in done.stdout
    stray.unlink()
    assert _xeroml(seeded, config, "export", DAY).returncode == 0


def test_one_projects_exports_by_project(seeded: Path, tmp_path: Path) -> None:
    """`--project` picks the exports of a project, for export and verify; a project no export has,
    or one that no `--export` given belongs to, is a mistake, not an empty success."""
    config = tmp_path / "two.yaml"
    exports = [
        {
            "name": n,
            "project_id": p,
            "start_date": "2025-01-13",
            "retries": 0,
            "destination": {"provider": "local", "path": str(tmp_path / n)},
        }
        for n, p in (("main", "demo"), ("other", "acme"))
    ]
    config.write_text(yaml.safe_dump({"clickhouse": {"url": f"chdb://{seeded / 'db'}"}, "exports": exports}))
    done = _xeroml(seeded, config, "export", DAY, "--project", "acme")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "other" / "traces" / f"{DAY}.jsonl").exists() and not (tmp_path / "main").exists()
    done = _xeroml(seeded, config, "verify", "--project", "acme")
    assert done.returncode == 0 and {line.split("/")[0] for line in done.stdout.splitlines()} == {"other"}
    assert "no export of project 'nope'; the configuration's projects: acme, demo" in _plain(
        _xeroml(seeded, config, "export", DAY, "--project", "nope"), 2
    )
    assert "no export is both among --export other and of project demo" in _plain(
        _xeroml(seeded, config, "verify", "--project", "demo", "--export", "other"), 2
    )


def test_a_registered_project_is_backfilled_and_verified_alone(
    seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--project` of a registered export runs the fleet job for that project only (as a backfill
    from the UI does with the project as run configuration) and verifies its destination."""
    monkeypatch.setenv("XEROML_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    folder = tmp_path.name  # registered folders are relative to the working directory: `seeded`
    entries = [
        {"name": p, "project_id": p, "start_date": "2025-01-13", "destination": {"provider": "local", "path": f"{folder}/{p}"}}
        for p in ("acme", "globex")
    ]
    (tmp_path / "entries.yaml").write_text(yaml.safe_dump(entries))
    assert _xeroml(seeded, None, "destinations", "import", str(tmp_path / "entries.yaml")).returncode == 0
    config = tmp_path / "fleet.yaml"
    main = {
        "name": "main",
        "project_id": "demo",
        "start_date": "2025-01-13",
        "destination": {"provider": "local", "path": str(tmp_path / "main")},
    }
    config.write_text(
        yaml.safe_dump(
            {"clickhouse": {"url": f"chdb://{seeded / 'db'}"}, "exports": [main], "fleet": {"start_date": "2025-01-01"}}
        )
    )
    done = _xeroml(seeded, config, "export", "2025-01-13", DAY, "--project", "acme")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()[:2]] == ["acme 2025-01-13", f"acme {DAY}"]
    assert "ok traces=" in done.stdout.splitlines()[0]
    out = seeded / folder
    assert (out / "acme" / "traces" / f"{DAY}.jsonl").exists() and not (out / "globex").exists()
    assert not (tmp_path / "main").exists()
    done = _xeroml(seeded, config, "verify", "--project", "acme")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "acme/traces: 2 manifests, 2 objects: ok" in done.stdout
    assert "no configured or registered export of project 'nope'" in _plain(
        _xeroml(seeded, config, "export", DAY, "--project", "nope"), 2
    )
