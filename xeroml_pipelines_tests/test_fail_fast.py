"""Failures that say why, within seconds (issue 20's findings, each reproduced as a user meets it
at the CLI): an unreachable ClickHouse, a server that never answers, a missing secret, a YAML
syntax error, a missing XEROML_CONFIG file."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.errors import ExportError
from xeroml_pipelines_tests.emulators import free_port
from xeroml_pipelines_tests.test_cli import DAY, _plain, _xeroml


def _server_config(tmp_path: Path, url: str, **clickhouse: object) -> Path:
    """README's configuration example: retries left at their default (3)."""
    path = tmp_path / "xeroml.yaml"
    export = {
        "name": "nightly",
        "project_id": "demo",
        "start_date": "2025-01-13",
        "destination": {"provider": "local", "path": str(tmp_path / "out")},
    }
    path.write_text(yaml.safe_dump({"clickhouse": {"url": url, **clickhouse}, "exports": [export]}))
    return path


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, a proxy to nowhere)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_an_unreachable_clickhouse_fails_within_seconds_naming_host_and_reason(tmp_path: Path) -> None:
    port = free_port()
    began = time.monotonic()
    done = _xeroml(tmp_path, _server_config(tmp_path, f"http://127.0.0.1:{port}", connect_retry_s=3), "export", DAY)
    seconds = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stdout.splitlines() if "FAILED:" in line]
    assert len(failed) == 1, done.stdout
    assert f"cannot reach ClickHouse at http://127.0.0.1:{port}: connection refused" in failed[0]
    assert "files under" not in done.stdout and "loaded into" not in done.stdout
    assert "Unexpected Http Driver Exception" not in done.stderr and "Retrying" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
    assert seconds < 60, seconds  # not the step retries' minutes (generous: a loaded CI machine)

    verbose = _xeroml(
        tmp_path, _server_config(tmp_path, f"http://127.0.0.1:{port}", connect_retry_s=0), "export", DAY, "--verbose"
    )
    assert verbose.returncode == 1
    # the stack trace and the driver's own warnings, with --verbose only
    assert "Stack Trace" in verbose.stderr and "Unexpected Http Driver Exception" in verbose.stderr, verbose.stderr


def test_connecting_is_retried_for_connect_retry_s_then_stops() -> None:
    port = free_port()
    resource = ClickHouseResource(url=f"http://127.0.0.1:{port}", connect_retry_s=3.5)
    began = time.monotonic()
    with pytest.raises(ExportError) as err:
        resource.get_client()
    assert 3 <= time.monotonic() - began < 15
    assert err.value.permanent  # reported now, not after the step's retry delays
    assert "3 attempts" in str(err.value)  # immediately, after 1 s, after 2 more


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    resource = ClickHouseResource(
        url=f"http://127.0.0.1:{silent_server}", read_timeout_s=1, connect_timeout_s=1, connect_retry_s=0
    )
    began = time.monotonic()
    with pytest.raises(ExportError, match=f"127.0.0.1:{silent_server}: no answer before the timeout"):
        resource.get_client()
    assert time.monotonic() - began < 15


def test_a_missing_secret_is_a_configuration_error_before_anything_runs(tmp_path: Path, monkeypatch) -> None:
    config = _server_config(tmp_path, "http://127.0.0.1:8123", password_env="XEROML_TEST_NO_SUCH_PASSWORD")
    monkeypatch.delenv("XEROML_TEST_NO_SUCH_PASSWORD", raising=False)
    out = _plain(_xeroml(tmp_path, config, "export", DAY), 2)
    assert "XEROML_TEST_NO_SUCH_PASSWORD (clickhouse.password_env)" in out and "DagsterInvalidConfigError" not in out
    assert not (tmp_path / "out").exists() and not (tmp_path / ".dagster_home").exists()


def test_yaml_syntax_errors_name_the_file_line_and_column_plainly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clickhouse:\n  url: chdb:///tmp/x\n exports:\n  - name: e\n")
    out = _plain(_xeroml(tmp_path, bad, "export", DAY), 2)
    assert f"{bad}, line 3, column 2: not valid YAML: this line's indentation does not line up" in out
    assert "<unicode string>" not in out


def test_a_missing_config_file_says_how_to_get_the_defaults(tmp_path: Path) -> None:
    out = _plain(_xeroml(tmp_path, tmp_path / "nope.yaml", "export", DAY), 2)
    assert "nope.yaml does not name a readable file; unset XEROML_CONFIG to run on the embedded defaults" in out


def test_verify_checks_its_destination_secrets_and_export_names_first(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "xeroml.yaml"
    export = {
        "name": "nightly",
        "project_id": "demo",
        "start_date": "2025-01-13",
        "destination": {
            "provider": "s3",
            "bucket": "xeroml-bucket",
            "region": "eu-west-1",
            "access_key_id_env": "XEROML_TEST_NO_KEY_ID",
            "secret_access_key_env": "XEROML_TEST_NO_SECRET",
        },
    }
    path.write_text(yaml.safe_dump({"clickhouse": {"url": "http://127.0.0.1:8123"}, "exports": [export]}))
    monkeypatch.delenv("XEROML_TEST_NO_KEY_ID", raising=False)
    monkeypatch.setenv("XEROML_TEST_NO_SECRET", "")  # empty counts as missing
    out = _plain(_xeroml(tmp_path, path, "verify"), 2)
    assert "XEROML_TEST_NO_KEY_ID (exports.0.destination.access_key_id_env)" in out
    assert "XEROML_TEST_NO_SECRET (exports.0.destination.secret_access_key_env)" in out
    out = _plain(_xeroml(tmp_path, path, "verify", "--export", "nosuch"), 2)
    assert "no export named 'nosuch'; the configuration has: nightly" in out
