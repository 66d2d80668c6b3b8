"""A newcomer's first session, scripted, in a clone's top level: the CLI met with a broken
configuration, dates outside the partitions, an unknown export and a failing destination (each
one or two plain lines and its exit code), then `xeroml demo`, then `xeroml ui` (README's UI
recipe) on the same Dagster instance, without a warning: the CLI's materializations, its
evaluated checks and its failed run are there, and the load sensor does not load again what the
CLI loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from xeroml_pipelines_tests.dagster_services import graphql, served, serving
from xeroml_pipelines_tests.emulators import free_port

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("xeroml")

RUNS = """
query { runsOrError(filter: {statuses: [FAILURE]}) { ... on Runs { results { runId tags { key value } } } } }"""

QUERY = """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(limit: 50) { partition } } }
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } }
    }
  }
}"""


def _materialized(data: dict) -> bool:
    return data["assetOrError"].get("assetMaterializations") is not None


def _plain(done: subprocess.CompletedProcess, code: int, *expected: str) -> None:
    """Exit code `code`, one or two lines on stderr saying each of `expected`, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, done.stderr
    for text in expected:
        assert text in done.stderr, (text, done.stderr)


def test_a_newcomers_session_from_cli_mistakes_to_the_ui(tmp_path: Path) -> None:
    for name in ("dagster.yaml", "workspace.yaml"):  # a clone's top level
        shutil.copy(REPO / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME", "XEROML_HOME")}

    def xeroml(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
        extra = {"XEROML_CONFIG": str(config)} if config else {}
        return subprocess.run([str(EXE), *args], cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=600)

    # a configuration with a typo: --help still works, the export names the field in YAML terms
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "clickhouse: {url: 'chdb:///tmp/nowhere'}\n"
        "exports:\n  - {name: s3, project_id: demo, start_date: 2025-01-13, destination: {provider: s4}}\n"
    )
    helped = xeroml("--help", config=broken)
    assert helped.returncode == 0 and "usage: xeroml" in helped.stdout
    _plain(xeroml("export", "2025-01-14", config=broken), 2, "exports.0.destination.provider: 's4' is not one of")

    # the embedded defaults: the demo, then mistakes in the command
    demo = xeroml("demo", "--days", "1", "--traces-per-day", "30")
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / ".dagster_home" / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    _plain(xeroml("export", "2024-12-01"), 2, "has no partitions for 2024-12-01", "its partitions are 2025-01-13 .. ")
    _plain(xeroml("export", "2025-01-14", "2025-01-13"), 2, "the range ends before it starts")
    _plain(xeroml("export", "2025-01-13", "--export", "nosuch"), 2, "no export named 'nosuch'; the configuration has: local")

    # a destination that cannot be written: one line with the cause, exit code 1, the run recorded
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the export's folder should be")
    failing = tmp_path / "failing.yaml"
    export = {"name": "blocked", "project_id": "demo", "start_date": "2025-01-13", "retries": 0}
    export["destination"] = {"provider": "local", "path": str(blocked)}
    failing.write_text(yaml.safe_dump({"clickhouse": {"url": f"chdb://{tmp_path / 'xeroml-demo-db'}"}, "exports": [export]}))
    failed = xeroml("export", "2025-01-13", config=failing)
    assert failed.returncode == 1 and "Traceback" not in failed.stdout + failed.stderr, failed.stderr
    (line,) = [x for x in failed.stdout.splitlines() if x.startswith("blocked 2025-01-13:")]
    assert line.startswith("blocked 2025-01-13: FAILED: ") and str(blocked) in line

    port = free_port()
    log = tmp_path / "ui.log"
    with serving([str(EXE), "ui", "--port", str(port)], tmp_path, env, log) as proc:
        deadline = time.monotonic() + 180
        data = served(proc, port, log, QUERY, _materialized, key={"path": ["local", "traces"]})
        partitions = {m["partition"] for m in data["assetOrError"]["assetMaterializations"]}
        assert "2025-01-13" in partitions, data  # exported by the CLI, shown by the UI
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        status = {c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in checks}
        assert status == {"files_match_manifests": "SUCCEEDED", "recount_matches_manifest": "SUCCEEDED"}, status
        # the failed export is in the same instance's run history
        failed_runs = graphql(port, RUNS)["runsOrError"]["results"]
        assert any(t["key"] == "xeroml/process" for r in failed_runs for t in r["tags"]), failed_runs
        # the daemon's first tick of the load sensor: the CLI already loaded every partition
        while time.monotonic() < deadline and "local_warehouse_load skipped" not in log.read_text():
            time.sleep(1)
        text = log.read_text()
        assert "Sensor local_warehouse_load skipped: Sensor function returned an empty result" in text, text
        noise = [line for line in text.splitlines() if "warn" in line.lower() or "Traceback" in line]
        assert not noise, noise
