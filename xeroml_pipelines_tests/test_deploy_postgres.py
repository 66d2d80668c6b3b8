"""The production deployment, with real parts: instance storage in PostgreSQL (deploy/dagster.yaml
as shipped, run concurrency 1 for the embedded engine), the code location served by a gRPC code
server named in a workspace file, dagster-webserver and dagster-daemon on that workspace. A
backfill launched as the UI does, a real schedule tick, the sensor-triggered warehouse loads,
and the freshness daemon turning a late export red, with its alert posted to a webhook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import duckdb
import pytest
import yaml

from xeroml_pipelines_tests.dagster_services import CodeServer, DagsterServices
from xeroml_pipelines_tests.emulators import REPO
from xeroml_pipelines_tests.postgres import Postgres, required_bindir

TABLES = ("traces", "observations", "scores", "sessions")
RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}"""
FRESHNESS = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { freshnessStatusInfo { freshnessStatus } } }
}"""


class _Webhook(BaseHTTPRequestHandler):
    posts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:00")


def _hour_path(key: str) -> str:
    """Where an hourly partition's objects are: 2025-01-15-13:00 -> 2025-01-15/13."""
    return f"{key[:10]}/{key[11:13]}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    found = required_bindir()
    root = tmp_path_factory.mktemp("deploy")
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    # the hourly schedule ticks at :MM, three minutes from now: a real tick, seen by the daemon
    tick_minute = (now.minute + 3) % 60
    config = {
        "clickhouse": {"url": f"chdb://{root / 'chdb'}"},
        "exports": [
            {
                "name": "hourly",
                "project_id": "demo",
                "cadence": "hourly",
                "lag_minutes": tick_minute,
                "start_date": yesterday.isoformat(),
                "recheck_days": 0,
                "destination": {"provider": "local", "path": str(root / "export")},
                "warehouse": {"type": "duckdb", "path": str(root / "warehouse.duckdb")},
            },
            {
                "name": "stale",
                "project_id": "demo",
                "tables": ["traces"],
                "start_date": yesterday.isoformat(),
                "recheck_days": 0,
                "destination": {"provider": "local", "path": str(root / "stale")},
            },
        ],
        "alerts": {"webhook_url_env": "XEROML_ALERT_WEBHOOK"},
    }
    (root / "exports.yaml").write_text(yaml.safe_dump(config))
    seed = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "seed", "--start", yesterday.isoformat(), "--days", "2"]
        + ["--traces-per-day", "96"],
        env={**os.environ, "XEROML_CONFIG": str(root / "exports.yaml")},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seed.returncode == 0, seed.stderr

    # deploy/dagster.yaml as shipped, but one run at a time: the embedded engine is one process's
    settings = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert "postgres" in settings["storage"] and settings["run_coordinator"]["class"] == "QueuedRunCoordinator"
    settings["concurrency"]["runs"]["max_concurrent_runs"] = 1
    (root / "dagster.yaml").write_text(yaml.safe_dump(settings))

    hook = type("Hook", (_Webhook,), {"posts": []})
    webhook = HTTPServer(("127.0.0.1", 0), hook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    postgres = code = services = None
    try:
        postgres = Postgres(found).start()
        home = root / "dagster_home"
        env = {
            **os.environ,
            **postgres.env,
            "XEROML_CONFIG": str(root / "exports.yaml"),
            "XEROML_ALERT_WEBHOOK": f"http://127.0.0.1:{webhook.server_port}/hook",
            "DAGSTER_HOME": str(home),
            "DAGSTER_COMPUTE_LOGS_DIR": str(root / "compute_logs"),
            "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
        }
        services = DagsterServices(home, env, settings=root / "dagster.yaml", workspace=root / "workspace.yaml")
        services._init_storage()  # the tables exist before the code server launches a run into them
        code = CodeServer(env, root).start()
        (root / "workspace.yaml").write_text(
            yaml.safe_dump(
                {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": code.port, "location_name": "xeroml_pipelines"}}]}
            )
        )
        services.start()
        yield {
            "svc": services,
            "root": root,
            "postgres": postgres,
            "hook": hook,
            "yesterday": yesterday,
            "tick_minute": tick_minute,
            "started": now,
            "env": env,
        }
    finally:
        if services:
            services.stop()
        if code:
            code.stop()
        if postgres:
            postgres.stop()
        webhook.shutdown()
        webhook.server_close()


def _runs(svc: DagsterServices, key: str, value: str) -> list[dict]:
    return svc.graphql(RUNS, filter={"tags": [{"key": key, "value": value}]})["runsOrError"]["results"]


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def _stale_materialization(env: dict[str, str], hours_ago: int) -> None:
    """Record that export `stale` last materialized `hours_ago` hours ago, as an old run would
    have (written through the instance, in PostgreSQL)."""
    code = f"""
import time
from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
with DagsterInstance.get() as instance:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        event_specific_data=StepMaterializationData(AssetMaterialization(AssetKey(["stale", "traces"]))),
        job_name=RUNLESS_JOB_NAME,
    )
    instance.report_dagster_event(event, run_id=RUNLESS_RUN_ID, timestamp=time.time() - {hours_ago} * 3600)
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def backfill(deployment) -> tuple[list[str], list[dict]]:
    svc, day = deployment["svc"], deployment["yesterday"]
    partitions = [_hour_key(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=h)) for h in range(3)]
    backfill_id, status = svc.backfill([["hourly", t] for t in TABLES], partitions)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), f"{status}\n{svc.logs()}"
    return partitions, _runs(svc, "dagster/backfill", backfill_id)


def test_backfill_runs_through_the_code_server_into_postgres(deployment, backfill) -> None:
    root, postgres = deployment["root"], deployment["postgres"]
    partitions, runs = backfill
    assert [r["status"] for r in runs] == ["SUCCESS"]  # one run for the range, one scan per table
    for table in TABLES:
        for key in partitions:
            manifest = json.loads((root / "export" / "_manifests" / table / f"{_hour_path(key)}.json").read_text())
            assert manifest["partition"] == key and manifest["run_id"] == runs[0]["runId"]
    # the instance is PostgreSQL's: the run is a row there, and no SQLite storage was made
    assert postgres.query(f"SELECT status FROM runs WHERE run_id = '{runs[0]['runId']}'") == "SUCCESS"
    assert not list((deployment["svc"].home).rglob("*.db"))
    # the run's logs are where deploy/dagster.yaml puts them: the volume the webserver reads too
    logs = [p for p in (root / "compute_logs").rglob("*") if p.is_file() and runs[0]["runId"] in str(p)]
    assert logs, sorted((root / "compute_logs").rglob("*"))


def test_a_real_schedule_tick_exports_the_hour_that_closed(deployment) -> None:
    svc, root = deployment["svc"], deployment["root"]

    def succeeded():
        runs = _runs(svc, "dagster/schedule_name", "hourly_hourly")
        assert not [r for r in runs if r["status"] in ("FAILURE", "CANCELED")], svc.logs()
        return [r for r in runs if r["status"] == "SUCCESS"]

    (run,) = svc.wait_for(succeeded, 420, "the scheduled run")
    partition = _tag(run, "dagster/partition")
    started = deployment["started"]
    tick = started.replace(minute=deployment["tick_minute"], second=0, microsecond=0)
    if tick < started:
        tick += timedelta(hours=1)
    assert partition == _hour_key(tick - timedelta(hours=1))  # the hour that closed before the tick
    for table in TABLES:
        manifest = json.loads((root / "export" / "_manifests" / table / f"{_hour_path(partition)}.json").read_text())
        assert manifest["run_id"] == run["runId"]


def test_the_sensor_loads_what_was_exported(deployment, backfill) -> None:
    svc, root = deployment["svc"], deployment["root"]
    partitions, _ = backfill

    def loaded():
        runs = _runs(svc, "xeroml/trigger", "export-materialized")
        assert not [r for r in runs if r["status"] == "FAILURE"], svc.logs()
        done = {_tag(r, "dagster/partition") for r in runs if r["status"] == "SUCCESS"}
        return done >= set(partitions) and not [r for r in runs if r["status"] not in ("SUCCESS", "CANCELED")]

    svc.wait_for(loaded, 300, "the sensor-triggered loads", poll=3)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        loaded_ids = {row[0] for row in con.execute("SELECT id FROM xeroml_traces").fetchall()}
    exported = set()
    for key in partitions:
        path = root / "export" / "traces" / f"{_hour_path(key)}.jsonl"  # an hour without rows has only its manifest
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        exported |= {x["id"] for x in lines if not x["is_deleted"]}
    assert exported and exported <= loaded_ids


def test_a_late_export_turns_red_and_its_alert_is_posted(deployment, backfill) -> None:
    svc, hook = deployment["svc"], deployment["hook"]
    _stale_materialization(deployment["env"], hours_ago=48)

    def status(*path: str) -> str | None:
        info = svc.graphql(FRESHNESS, key={"path": list(path)})["assetNodeOrError"]["freshnessStatusInfo"]
        return info and info["freshnessStatus"]

    svc.wait_for(lambda: status("stale", "traces") == "DEGRADED", 180, "the freshness daemon failing export stale")
    assert status("hourly", "traces") == "HEALTHY"  # just backfilled: within its policy
    late = svc.wait_for(lambda: [p for p in hook.posts if "stale/traces" in p], 180, "the freshness alert")
    assert "xeroml exports are late" in late[0] and "hourly/" not in late[0]
