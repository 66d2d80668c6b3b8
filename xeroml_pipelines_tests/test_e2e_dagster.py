"""End to end through a real dagster-webserver and dagster-daemon: a backfill launched as the UI
does, a schedule tick, and the sensor-triggered warehouse load into DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from xeroml_pipelines_tests.dagster_services import DagsterServices

LOCATION = {"repositoryLocationName": "xeroml_pipelines", "repositoryName": "__repository__"}
TABLES = ("traces", "observations", "scores", "sessions")
DAYS = ["2025-01-13", "2025-01-14", "2025-01-15"]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("e2e")
    config = root / "exports.yaml"
    config.write_text(
        f"""
clickhouse: {{url: "chdb://{root}/chdb"}}
exports:
  - name: local
    project_id: demo
    start_date: 2025-01-13
    recheck_days: 0
    destination: {{provider: local, path: "{root}/export"}}
    warehouse: {{type: duckdb, path: "{root}/warehouse.duckdb"}}
"""
    )
    env = {"XEROML_CONFIG": str(config)}
    seed = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "seed", "--days", "3", "--traces-per-day", "80"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seed.returncode == 0, seed.stderr
    with DagsterServices(root / "dagster_home", env) as svc:
        yield svc, root


RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}"""


def _runs(svc: DagsterServices, **tag) -> list[dict]:
    ((key, value),) = tag.items()
    return svc.graphql(RUNS, filter={"tags": [{"key": key, "value": value}]})["runsOrError"]["results"]


@pytest.fixture(scope="module")
def backfill(services) -> tuple[str, str, list[dict]]:
    """A backfill of three days of every export table, launched as the UI launches it."""
    svc, _ = services
    backfill_id, status = svc.backfill([["local", t] for t in TABLES], DAYS)
    return backfill_id, status, _runs(svc, **{"dagster/backfill": backfill_id})


def test_backfill_from_the_ui_writes_every_partition(services, backfill) -> None:
    svc, root = services
    _, status, runs = backfill
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), f"{status}\n{svc.logs()}"
    # the multi-run policy puts up to 31 partitions in a run: one run, one scan per table
    assert [r["status"] for r in runs] == ["SUCCESS"]
    for table in TABLES:
        for day in DAYS:
            manifest = json.loads((root / "export" / "_manifests" / table / f"{day}.json").read_text())
            assert manifest["partition"] == day and manifest["run_id"] == runs[0]["runId"]
            assert manifest["rows"] > 0 and (root / "export" / table / f"{day}.jsonl").stat().st_size == manifest["bytes"]


def test_sensor_loads_the_exported_partitions_into_duckdb(services, backfill) -> None:
    svc, root = services

    def loaded():
        runs = _runs(svc, **{"xeroml/trigger": "export-materialized"})
        partitions = {t["value"] for r in runs if r["status"] == "SUCCESS" for t in r["tags"] if t["key"] == "dagster/partition"}
        pending = [r for r in runs if r["status"] not in ("SUCCESS", "FAILURE", "CANCELED")]
        assert not [r for r in runs if r["status"] == "FAILURE"], svc.logs()
        return partitions >= set(DAYS) and not pending

    svc.wait_for(loaded, 300, "the sensor-triggered loads", poll=3)

    # expected: for every record in the exported files, its newest line; only live ones remain
    for table in TABLES:
        newest: dict[str, dict] = {}
        for day in DAYS:
            path = root / "export" / table / f"{day}.jsonl"
            for line in map(json.loads, path.read_text().splitlines()):
                if line["id"] not in newest or line["event_ts"] > newest[line["id"]]["event_ts"]:
                    newest[line["id"]] = line
        expected = sorted((i, line["event_ts"]) for i, line in newest.items() if not line["is_deleted"])
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            rows = con.execute(
                f"SELECT id, strftime(event_ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%g') || 'Z' FROM xeroml_{table} ORDER BY 1"
            ).fetchall()
        assert rows == expected, table


SCHEDULE_DRY_RUN = """
mutation($selector: ScheduleSelector!, $ts: Float!) {
  scheduleDryRun(selectorData: $selector, timestamp: $ts) {
    __typename
    ... on DryRunInstigationTick { evaluationResult { runRequests { tags { key value } } skipReason error { message } } }
    ... on PythonError { message }
  }
}"""


def test_schedule_tick_targets_the_partition_that_just_closed(services) -> None:
    svc, _ = services
    tick = datetime(2025, 3, 2, 0, 20, tzinfo=UTC).timestamp()
    result = svc.graphql(SCHEDULE_DRY_RUN, selector={**LOCATION, "scheduleName": "local_daily"}, ts=tick)["scheduleDryRun"]
    assert result["__typename"] == "DryRunInstigationTick", result
    (request,) = result["evaluationResult"]["runRequests"]
    assert {t["key"]: t["value"] for t in request["tags"]}["dagster/partition"] == "2025-03-01"


CHROMIUM = "/usr/bin/chromium"


def test_ui_shows_the_export_and_warehouse_assets_and_partitions(services, backfill, tmp_path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed; .ci/run installs it")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    svc, _ = services
    base = f"http://127.0.0.1:{svc.port}"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            def visit(path: str, shot: str, *texts: str) -> None:
                page.goto(base + path, wait_until="networkidle")
                skip = page.get_by_role("button", name="Skip")  # the first-visit community dialog
                if skip.count():
                    skip.first.click()
                try:
                    for text in texts:
                        page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
                finally:
                    page.screenshot(path=str(tmp_path / shot))

            visit("/locations/xeroml_pipelines/asset-groups/local", "asset-group.png", *TABLES)
            visit("/assets/local/traces?view=partitions", "partitions.png", "Materialized (3)")
            visit("/locations/xeroml_pipelines/asset-groups/local_warehouse", "warehouse-group.png", *TABLES)
        finally:
            browser.close()
    for shot in ("asset-group.png", "partitions.png", "warehouse-group.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")


CHECKS = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } }
    }
  }
}"""


def test_checks_ran_with_the_backfill(services, backfill) -> None:
    svc, _ = services
    node = svc.graphql(CHECKS, key={"path": ["local", "traces"]})["assetNodeOrError"]
    status = {
        c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in node["assetChecksOrError"]["checks"]
    }
    assert status == {"files_match_manifests": "SUCCEEDED", "recount_matches_manifest": "SUCCEEDED"}, status
