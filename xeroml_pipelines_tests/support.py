"""What the tests share besides fixtures: running an export as a user does, reading and comparing
what it wrote, and reaching the emulators the fixtures started."""

from __future__ import annotations

import gzip
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ExportConfig, XeroMLConfig
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.destinations.local import LocalFolder

# The ClickHouse server's password (a fresh secret per session), and the env var runs read it from.
CLICKHOUSE_PASSWORD = "ch-" + secrets.token_hex(12)
CLICKHOUSE_PASSWORD_ENV = "XEROML_TEST_CLICKHOUSE_PASSWORD"


@dataclass
class Exporter:
    """Runs an export the way a user does: a config, the code location's definitions, Dagster."""

    ch: ClickHouseResource
    out: Path
    project_id: str = "p1"
    password_env: str | None = None  # a ClickHouse server's password, by env var name

    def config(self, **export: Any) -> XeroMLConfig:
        fields: dict[str, Any] = {
            "name": "exp",
            "project_id": self.project_id,
            "destination": LocalFolder(path=str(self.out)),
            "start_date": "2025-01-01",
            "retries": 0,  # a failing test fails at once; test_retries.py covers the policy
        }
        fields.update(export)
        return XeroMLConfig(
            clickhouse=ClickHouseResource(
                url=self.ch.url, database=self.ch.database, password_env=self.password_env or self.ch.password_env
            ),
            exports=(ExportConfig.model_validate(fields),),
        )

    def run(
        self,
        partition: str,
        tables: tuple[str, ...] = ("traces", "observations", "scores", "sessions"),
        until: str | None = None,
        batch_rows: int | None = None,
        instance: DagsterInstance | None = None,
        raise_on_error: bool = True,
        **export: Any,
    ):
        defs = build_definitions(self.config(tables=tables, **export))
        resources = dict(defs.resources)
        if batch_rows:
            resources["clickhouse"] = resources["clickhouse"].model_copy(update={"batch_rows": batch_rows})
        assets = [defs.get_assets_def(AssetKey(["exp", t])) for t in tables]
        if until:  # a range run, as a backfill with a multi-partition policy launches it
            tags = {ASSET_PARTITION_RANGE_START_TAG: partition, ASSET_PARTITION_RANGE_END_TAG: until}
            return materialize(assets, tags=tags, resources=resources, instance=instance, raise_on_error=raise_on_error)
        return materialize(assets, partition_key=partition, resources=resources, instance=instance, raise_on_error=raise_on_error)

    def path(self, table: str, rel: str, ext: str = ".jsonl") -> Path:
        return self.out / table / f"{rel}{ext}"

    def lines(self, table: str, rel: str, ext: str = ".jsonl") -> list[dict[str, Any]]:
        p = self.path(table, rel, ext)
        if not p.exists():
            return []
        return [json.loads(line) for line in read_bytes(p).decode("utf-8").splitlines()]

    def manifest(self, table: str, rel: str) -> dict[str, Any]:
        return json.loads((self.out / "_manifests" / table / f"{rel}.json").read_text())


def assert_same_exports(
    a: Exporter, b: Exporter, tables: tuple[str, ...], days: list[str], fields: tuple[str, ...], ext: str = ".jsonl"
) -> None:
    """Two exports of the same data wrote the same files and manifests (`fields` of them)."""
    for table in tables:
        for day in days:
            pa, pb = a.path(table, day, ext), b.path(table, day, ext)
            assert pa.exists() == pb.exists(), (table, day)
            if pa.exists():
                assert pa.read_bytes() == pb.read_bytes(), (table, day)
            ma, mb = a.manifest(table, day), b.manifest(table, day)
            for field in fields:
                assert ma[field] == mb[field], (table, day, field)


def read_bytes(p: Path) -> bytes:
    data = p.read_bytes()
    if p.suffix == ".gz":
        return gzip.decompress(data)
    if p.suffix == ".zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"duplicate ids in one partition: {ids}"
    return {line["id"]: line for line in lines}


def server_database(server, name: str) -> ClickHouseResource:
    """A fresh database on the ClickHouse server and a resource for it (a server refuses a
    connection to a database that does not exist, so it is created first)."""
    import clickhouse_connect

    admin = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, interface="http", password=CLICKHOUSE_PASSWORD)
    admin.command(f"CREATE DATABASE `{name}`")
    admin.close()
    return ClickHouseResource(url=server.url, password_env=CLICKHOUSE_PASSWORD_ENV, database=name)


def make_provider(name: str, request: pytest.FixtureRequest, tmp_path: Path, endpoint: str | None = None):
    from xeroml_pipelines_tests import providers

    if name == "local":
        return providers.Local("local", root=tmp_path / "dest")
    server = request.getfixturevalue({"s3": "moto_server", "gcs": "gcs_server", "azure": "azurite_server"}[name])
    cls = {"s3": providers.S3, "gcs": providers.GCS, "azure": providers.Azure}[name]
    return cls(name, endpoint=endpoint or server.url)


class SensorTicks:
    """A sensor evaluated tick after tick with its cursor carried, as the daemon evaluates it;
    `cursor` may be edited between ticks."""

    def __init__(self, defs: Any, name: str, instance: DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.sensor = next(s for s in defs.sensors if s.name == name)
        self.cursor: str | None = None

    def __call__(self) -> Any:
        resources = self.defs.resources
        with build_sensor_context(instance=self.instance, definitions=self.defs, resources=resources, cursor=self.cursor) as ctx:
            result = self.sensor.evaluate_tick(ctx)
        self.cursor = result.cursor
        return result


def latest_versions(ch: ClickHouseResource, table: str, names: list[str], project_id: str = "demo") -> dict[str, dict]:
    """Per id, the row of the record's latest version, computed in Python: the greatest
    event_ts, a delete winning a tie (the export's rule, independently)."""
    rows = (
        ch.get_client()
        .query(
            f"SELECT {', '.join(f'`{n}`' for n in names)} FROM `{ch.database}`.{table} WHERE project_id = {{p:String}}",
            parameters={"p": project_id},
        )
        .named_results()
    )
    latest: dict[str, dict] = {}
    for row in rows:
        best = latest.get(row["id"])
        if best is None or (row["event_ts"], row["is_deleted"]) > (best["event_ts"], best["is_deleted"]):
            latest[row["id"]] = row
    return latest


def documentation() -> str:
    """README.md and every page of docs/, as one text: a test takes the snippet it runs from
    wherever the documentation shows it."""
    repo = Path(__file__).resolve().parents[1]
    pages = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)
