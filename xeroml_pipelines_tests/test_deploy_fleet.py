"""The fleet deployed (issue 22): the instance and the export registry in PostgreSQL, ClickHouse as
a server, the code location in a gRPC code server, dagster-webserver and dagster-daemon. 50
registered projects on 2 shards; a real tick of the fleet's hourly schedule starts one run per
shard, the two run at once, one project's destination refuses (an S3 bucket that does not exist)
and only it fails, its window recorded as missed; every other project's hour is committed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import text

from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.registry.entries import parse_entry
from xeroml_pipelines.registry.keyring import new_key
from xeroml_pipelines.registry.runs import missed_of, shard_of
from xeroml_pipelines.registry.store import MISSED, Registry
from xeroml_pipelines_tests.dagster_services import CodeServer, DagsterServices
from xeroml_pipelines_tests.emulators import REPO
from xeroml_pipelines_tests.postgres import Postgres, required_bindir
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD, CLICKHOUSE_PASSWORD_ENV, make_provider, server_database

PROJECTS = [f"p{i:02d}" for i in range(50)]
REFUSED = "p07"
TABLES = ["traces", "observations"]
RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, clickhouse_server, request: pytest.FixtureRequest) -> Iterator[dict]:
    found = required_bindir()
    registry = None
    root = tmp_path_factory.mktemp("fleet")
    now = datetime.now(UTC)
    tick_minute = (now.minute + 3) % 60  # the hourly schedule ticks three minutes from now
    ch = server_database(clickhouse_server, "fleet_deploy")
    ch.create_schema()
    generate(ch, DemoSpec(start=now.date() - timedelta(days=1), days=2, traces_per_day=48, projects=tuple(PROJECTS)))
    s3 = make_provider("s3", request, root)
    config = {
        "clickhouse": {"url": ch.url, "database": ch.database, "password_env": CLICKHOUSE_PASSWORD_ENV},
        "fleet": {
            "start_date": (now.date() - timedelta(days=1)).isoformat(),
            "shards": 2,
            "cadences": ["hourly"],
            "tables": TABLES,
            "lag_minutes": tick_minute,
            "retries": 0,
        },
    }
    (root / "fleet.yaml").write_text(yaml.safe_dump(config))
    settings = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    settings["concurrency"]["runs"]["max_concurrent_runs"] = 4  # a ClickHouse server: runs at once
    (root / "dagster.yaml").write_text(yaml.safe_dump(settings))
    postgres = code = services = hold = None
    try:
        postgres = Postgres(found).start()
        postgres.query("CREATE SCHEMA IF NOT EXISTS xeroml")
        env = {
            **os.environ,
            **postgres.env,
            **s3.env,
            CLICKHOUSE_PASSWORD_ENV: CLICKHOUSE_PASSWORD,
            "XEROML_CONFIG": str(root / "fleet.yaml"),
            # the registry in the deployment's PostgreSQL, in a schema of its own
            "XEROML_REGISTRY_URL": f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.db}"
            "?options=-csearch_path%3Dxeroml",
            "XEROML_REGISTRY_KEYS": new_key(),
            "XEROML_ALLOW_ENDPOINTS": "127.0.0.1",
            "XEROML_ALLOW_ENV_REFS": "TEST_*",
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DAGSTER_COMPUTE_LOGS_DIR": str(root / "compute_logs"),
        }
        entries = []
        for p in PROJECTS:
            destination = {"provider": "local", "path": f"out/{p}"}
            if p == REFUSED:
                destination = s3.destination(bucket="xeroml-no-such-bucket", prefix=p)
            raw = {"name": p, "project_id": p, "start_date": config["fleet"]["start_date"], "cadence": "hourly"}
            entries.append(parse_entry({**raw, "tables": TABLES, "destination": destination}, p))
        registry = Registry(env["XEROML_REGISTRY_URL"]).create()
        os.environ.update({k: env[k] for k in ("XEROML_ALLOW_ENDPOINTS", "XEROML_ALLOW_ENV_REFS")})
        registry.put(entries)
        # Held until the test has seen both shard runs started: each run's last step records its
        # outcome in this table, so neither can finish while it is locked (reads still pass).
        hold = registry.engine.connect()
        hold.begin()
        hold.execute(text(f"LOCK TABLE {MISSED.name} IN EXCLUSIVE MODE"))
        services = DagsterServices(root / "dagster_home", env, settings=root / "dagster.yaml", workspace=root / "workspace.yaml")
        services._init_storage()
        code = CodeServer(env, root).start()
        (root / "workspace.yaml").write_text(
            yaml.safe_dump(
                {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": code.port, "location_name": "xeroml_pipelines"}}]}
            )
        )
        services.start()
        yield {"svc": services, "root": root, "registry": registry, "hold": hold, "now": now, "tick_minute": tick_minute}
    finally:
        if hold:
            hold.close()
        if registry:
            registry.close()
        if services:
            services.stop()
        if code:
            code.stop()
        if postgres:
            postgres.stop()
        for name in ("XEROML_ALLOW_ENDPOINTS", "XEROML_ALLOW_ENV_REFS"):
            os.environ.pop(name, None)


def test_a_schedule_tick_runs_the_shards_at_once_and_isolates_the_refused_project(fleet) -> None:
    svc, root, registry = fleet["svc"], fleet["root"], fleet["registry"]

    def shard_runs() -> list[dict]:
        runs = svc.graphql(RUNS, filter={"tags": [{"key": "dagster/schedule_name", "value": "fleet_hourly"}]})
        runs = runs["runsOrError"]["results"]
        assert not [r for r in runs if r["status"] in ("FAILURE", "CANCELED")], svc.logs()
        return runs

    # The two shards run at once, shown without reading clocks: while the fixture holds the table
    # each run records its outcome in last, no run can finish, so seeing both started means the
    # queue let both out together. A queue that let one at a time would leave the second queued
    # behind the blocked first, and this wait would time out.
    svc.wait_for(
        lambda: sum(r["status"] == "STARTED" for r in shard_runs()) == 2, 480, "the fleet schedule's two shard runs, at once"
    )
    fleet["hold"].commit()

    def ended() -> list[dict] | None:
        runs = shard_runs()
        return runs if len(runs) == 2 and all(r["status"] == "SUCCESS" for r in runs) else None

    runs = svc.wait_for(ended, 240, "the two shard runs' end")
    shards = sorted(next(t["value"] for t in r["tags"] if t["key"] == "xeroml/shard") for r in runs)
    assert shards == ["0", "1"] and {shard_of(p, 2) for p in PROJECTS} == {0, 1}
    partition = next(t["value"] for t in runs[0]["tags"] if t["key"] == "dagster/partition")
    tick = fleet["now"].replace(minute=fleet["tick_minute"], second=0, microsecond=0)
    if tick < fleet["now"]:
        tick += timedelta(hours=1)
    closed = tick - timedelta(hours=1)
    assert partition == closed.strftime("%Y-%m-%d-%H:00")
    rows = 0
    for p in PROJECTS:
        for table in TABLES:
            manifest_path = root / "out" / p / "_manifests" / table / f"{closed:%Y-%m-%d/%H}.json"
            assert manifest_path.exists() == (p != REFUSED), (p, table)
            if p != REFUSED:
                manifest = json.loads(manifest_path.read_text())
                assert manifest["project_id"] == p and manifest["partition"] == partition
                rows += manifest["rows"]
    assert rows > 0
    (missed,) = {(m.partition, m.error) for m in missed_of(registry, REFUSED) if m.table == "traces"}
    assert missed[0] == partition and "xeroml-no-such-bucket" in (missed[1] or "")
    assert registry.get(REFUSED).consecutive_failures == 1 and registry.get(REFUSED).entry.enabled
