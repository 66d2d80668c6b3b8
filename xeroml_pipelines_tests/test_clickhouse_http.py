"""The ClickHouse-server path: clickhouse-connect over HTTP, streaming, against ClickHouse's HTTP
interface in front of a chDB engine of its own (clickhouse_http.py).

The same demo data is generated in the server and in the embedded engine; every file an export
writes over HTTP must equal, byte for byte, the one the embedded path writes. A connection cut
mid-stream fails the run clearly, leaves nothing partial, and a re-run writes the same bytes.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines_tests import emulators
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD as PASSWORD
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD_ENV as PASSWORD_ENV
from xeroml_pipelines_tests.support import Exporter, assert_same_exports, server_database

TABLES = ("traces", "observations", "scores", "sessions")
SPEC = DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=150)


@pytest.fixture
def twins(request, clickhouse_server, chdb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same data (`SPEC`, or the test's `spec` marker) in the server and in the embedded
    engine, and an exporter for each."""
    marker = request.node.get_closest_marker("spec")
    spec = marker.args[0] if marker else SPEC
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    name = f"h_{uuid.uuid4().hex[:10]}"
    server = server_database(clickhouse_server, name)
    embedded = ClickHouseResource(url=chdb_url, database=name)
    for ch in (server, embedded):
        generate(ch, spec)
    yield (
        Exporter(server, tmp_path / "http", project_id="demo", password_env=PASSWORD_ENV),
        Exporter(embedded, tmp_path / "embedded", project_id="demo"),
    )
    for ch in (server, embedded):
        ch.get_client().command(f"DROP DATABASE `{name}`")
        ch.close()


def _same_files(a: Exporter, b: Exporter, days: list[str]) -> None:
    assert_same_exports(a, b, TABLES, days, ("rows", "tombstones", "invalid_utf8", "bytes", "sha256", "fingerprint"))


def test_export_over_http_equals_the_embedded_export(twins) -> None:
    http, embedded = twins
    days = ["2025-01-13", "2025-01-14"]
    for exporter in (http, embedded):
        for day in days:
            assert exporter.run(day, batch_rows=100).success  # many blocks: the stream really streams
    assert http.manifest("observations", days[0])["rows"] > 300
    _same_files(http, embedded, days)

    # a range run over HTTP: one file per partition, the same bytes
    ranged = Exporter(http.ch, http.out.parent / "http-range", project_id="demo", password_env=PASSWORD_ENV)
    assert ranged.run(days[0], until=days[1]).success
    _same_files(ranged, embedded, days)


# ~25 MB of lines in the day: far more than the socket buffers hold when the connection is cut
@pytest.mark.spec(DemoSpec(start=date(2025, 1, 13), days=1, traces_per_day=2000, text_scale=4))
def test_connection_cut_mid_stream_fails_clearly_and_the_rerun_is_identical(twins) -> None:
    http, embedded = twins
    day = "2025-01-13"
    proxy = emulators.TcpProxy(int(http.ch.url.rsplit(":", 1)[1]))
    try:
        via_proxy = Exporter(
            http.ch.model_copy(update={"url": proxy.url}), http.out, project_id="demo", password_env=PASSWORD_ENV
        )
        assert via_proxy.run(day, tables=("observations",)).success
        good, good_manifest = via_proxy.path("observations", day).read_bytes(), via_proxy.manifest("observations", day)
        # a later run (say, late data arrived) loses its connection halfway
        proxy.arm(response_bytes=8 << 20)  # well inside the day's ~25 MB of lines
        with DagsterInstance.ephemeral() as instance:
            result = via_proxy.run(day, tables=("observations",), instance=instance, raise_on_error=False)
            assert not result.success
            (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            message = failure.step_failure_data.error.to_string()
            assert f"ClickHouse stopped sending observations {day}" in message and "Connection broken" in message, message
            assert PASSWORD not in message
        # the previous good file and its manifest are untouched, nothing staged is left
        assert via_proxy.path("observations", day).read_bytes() == good
        assert via_proxy.manifest("observations", day) == good_manifest
        assert sorted(
            p.relative_to(via_proxy.out).as_posix() for p in via_proxy.out.rglob("*") if p.is_file() and "_locks" not in p.parts
        ) == ["_manifests/observations/2025-01-13.json", "observations/2025-01-13.jsonl"]

        proxy.restore()
        assert via_proxy.run(day, tables=("observations",)).success
    finally:
        proxy.close()
    assert embedded.run(day, tables=("observations",)).success
    assert via_proxy.path("observations", day).read_bytes() == embedded.path("observations", day).read_bytes()


def test_wrong_password_fails_at_once_and_never_prints_it(twins, monkeypatch: pytest.MonkeyPatch) -> None:
    http, _ = twins
    wrong = "wrong-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    with DagsterInstance.ephemeral() as instance:
        result = http.run("2025-01-13", tables=("traces",), raise_on_error=False, instance=instance, retries=3, retry_delay_s=0)
    assert not result.success
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)  # a retry cannot fix it
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.to_string() if failure.step_failure_data.error else ""
    message += str(failure.step_failure_data.user_failure_data and failure.step_failure_data.user_failure_data.description)
    assert "ClickHouse refused to read traces 2025-01-13" in message and "AUTHENTICATION_FAILED" in message, message
    assert wrong not in message and PASSWORD not in message
    assert not http.path("traces", "2025-01-13").exists()
