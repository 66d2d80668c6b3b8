"""One Dagster instance: `xeroml demo` records its runs in ./.dagster_home, and `xeroml ui` (the
README's UI recipe) opens that instance without a warning: the CLI's materializations and check
results are there, and the load sensor does not load again what the CLI loaded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xeroml_pipelines_tests.dagster_services import _signal_group, group_alive
from xeroml_pipelines_tests.emulators import free_port

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("xeroml")

QUERY = """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(limit: 50) { partition } } }
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } }
    }
  }
}"""


def _graphql(port: int, query: str, **variables: object) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _stop(proc: subprocess.Popen) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal_group(proc.pid, signal.SIGKILL)


def test_ui_shows_what_the_cli_ran_on_one_instance(tmp_path: Path) -> None:
    for name in ("dagster.yaml", "workspace.yaml"):  # a clone's top level
        shutil.copy(REPO / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME", "XEROML_HOME")}
    demo = subprocess.run(
        [str(EXE), "demo", "--days", "1", "--traces-per-day", "30"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / ".dagster_home" / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()

    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(EXE), "ui", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        data = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                data = _graphql(port, QUERY, key={"path": ["local", "traces"]})
                if data["assetOrError"].get("assetMaterializations") is not None:
                    break
            except (OSError, AssertionError, KeyError):
                pass
            time.sleep(1)
        assert data is not None, log.read_text()
        partitions = {m["partition"] for m in data["assetOrError"]["assetMaterializations"]}
        assert "2025-01-13" in partitions, data  # exported by the CLI, shown by the UI
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        status = {c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in checks}
        assert status == {"files_match_manifests": "SUCCEEDED", "recount_matches_manifest": "SUCCEEDED"}, status
        # the daemon's first tick of the load sensor: the CLI already loaded every partition
        while time.monotonic() < deadline and "local_warehouse_load skipped" not in log.read_text():
            time.sleep(1)
        text = log.read_text()
        assert "Sensor local_warehouse_load skipped: Sensor function returned an empty result" in text, text
        noise = [line for line in text.splitlines() if "warn" in line.lower() or "Traceback" in line]
        assert not noise, noise
    finally:
        _stop(proc)
    assert not group_alive(proc.pid)
