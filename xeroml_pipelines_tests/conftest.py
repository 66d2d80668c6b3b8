from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD, CLICKHOUSE_PASSWORD_ENV, Exporter, make_provider


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


@pytest.fixture
def exporter(ch: ClickHouseResource, tmp_path: Path) -> Exporter:
    return Exporter(ch, tmp_path / "export")


# ---- object-store emulators (started once per session, only when a test asks) ----------------


@pytest.fixture(scope="session")
def emulator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulators")


def _serve(server):
    try:
        server.start()  # stops what it started if it fails
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


@pytest.fixture(scope="session")
def clickhouse_server(emulator_dir: Path):
    """ClickHouse's HTTP interface over an engine of its own (clickhouse_http.py), password-protected;
    its password in the environment variable the resources name, as a deployment gives it."""
    from xeroml_pipelines_tests import emulators

    os.environ[CLICKHOUSE_PASSWORD_ENV] = CLICKHOUSE_PASSWORD
    try:
        yield from _serve(emulators.clickhouse_http(emulator_dir, emulator_dir / "clickhouse-http-engine", CLICKHOUSE_PASSWORD))
    finally:
        os.environ.pop(CLICKHOUSE_PASSWORD_ENV, None)


@pytest.fixture(scope="session")
def bigquery_server(emulator_dir: Path, gcs_server):
    from xeroml_pipelines_tests import emulators

    yield from _serve(emulators.bqemulator(emulator_dir, emulator_dir / "gcs-data"))


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def provider(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    p = make_provider(request.param, request, tmp_path)
    for k, v in p.env.items():
        monkeypatch.setenv(k, v)
    return p
