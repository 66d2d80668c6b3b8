from __future__ import annotations

import gzip
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ClickHouseConfig, ExportConfig, LocalDestination, XeroMLConfig
from xeroml_pipelines.definitions import build_definitions


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # chDB allows one engine path per process: every test shares it, each in its own database.
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def ch(chdb_url: str) -> ClickHouseResource:
    resource = ClickHouseResource(url=chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    resource.create_schema()
    yield resource
    resource.get_client().command(f"DROP DATABASE IF EXISTS `{resource.database}`")


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
            "destination": LocalDestination(provider="local", path=str(self.out)),
            "start_date": "2025-01-01",
            "retries": 0,  # a failing test fails at once; test_retries.py covers the policy
        }
        fields.update(export)
        return XeroMLConfig(
            clickhouse=ClickHouseConfig(url=self.ch.url, database=self.ch.database, password_env=self.password_env),
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


def assert_same_exports(a: Exporter, b: Exporter, tables: tuple[str, ...], days: list[str], fields: tuple[str, ...]) -> None:
    """Two exports of the same data wrote the same files and manifests (`fields` of them)."""
    for table in tables:
        for day in days:
            pa, pb = a.path(table, day), b.path(table, day)
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


@pytest.fixture
def exporter(ch: ClickHouseResource, tmp_path: Path) -> Exporter:
    return Exporter(ch, tmp_path / "export")


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"duplicate ids in one partition: {ids}"
    return {line["id"]: line for line in lines}



# ---- object-store emulators (started once per session, only when a test asks) ----------------


@pytest.fixture(scope="session")
def emulator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulators")


def _serve(server):
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(emulator_dir: Path):
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.moto(emulator_dir))


@pytest.fixture(scope="session")
def gcs_server(emulator_dir: Path):
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.fake_gcs(emulator_dir, emulator_dir / "gcs-data"))


@pytest.fixture(scope="session")
def azurite_server(emulator_dir: Path):
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.azurite(emulator_dir, emulator_dir / "azurite-data"))


# The ClickHouse server's password (a fresh secret per session), and the env var runs read it from.
CLICKHOUSE_PASSWORD = "ch-" + secrets.token_hex(12)
CLICKHOUSE_PASSWORD_ENV = "XEROML_TEST_CLICKHOUSE_PASSWORD"


@pytest.fixture(scope="session")
def clickhouse_server(emulator_dir: Path):
    """ClickHouse's HTTP interface over an engine of its own (clickhouse_http.py), password-protected."""
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.clickhouse_http(emulator_dir, emulator_dir / "clickhouse-http-engine", CLICKHOUSE_PASSWORD))


def server_database(server, name: str) -> ClickHouseResource:
    """A fresh database on the ClickHouse server and a resource for it (a server refuses a
    connection to a database that does not exist, so it is created first)."""
    import clickhouse_connect

    admin = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, interface="http", password=CLICKHOUSE_PASSWORD)
    admin.command(f"CREATE DATABASE `{name}`")
    admin.close()
    return ClickHouseResource(url=server.url, password=CLICKHOUSE_PASSWORD, database=name)


@pytest.fixture(scope="session")
def bigquery_server(emulator_dir: Path, gcs_server):
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.bqemulator(emulator_dir, emulator_dir / "gcs-data"))


def make_provider(name: str, request: pytest.FixtureRequest, tmp_path: Path, endpoint: str | None = None):
    from xeroml_pipelines_tests import providers

    if name == "local":
        return providers.Local("local", root=tmp_path / "dest")
    server = request.getfixturevalue({"s3": "moto_server", "gcs": "gcs_server", "azure": "azurite_server"}[name])
    cls = {"s3": providers.S3, "gcs": providers.GCS, "azure": providers.Azure}[name]
    return cls(name, endpoint=endpoint or server.url)


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def provider(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    p = make_provider(request.param, request, tmp_path)
    for k, v in p.env.items():
        monkeypatch.setenv(k, v)
    return p
