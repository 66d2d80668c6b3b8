"""ClickHouse over HTTPS with a private CA (issue 20, deploy/): `ca_cert_file` makes the exporter
trust it; without it the connection is refused with a reason, not a traceback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.errors import ExportError
from xeroml_pipelines_tests.emulators import free_port


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xeroml test ClickHouse")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(folder)
    port = free_port()
    argv = [sys.executable, "-m", "xeroml_pipelines_tests.clickhouse_http", "--path", str(folder / "engine")]
    argv += ["--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"https://127.0.0.1:{port}", cert
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_private_ca_is_trusted_through_ca_cert_file(https_server: tuple[str, Path]) -> None:
    url, cert = https_server
    resource = ClickHouseResource(url=url, ca_cert_file=str(cert))
    assert resource.get_client().query("SELECT 41 + 1").first_row == (42,)
    resource.close()


def test_without_the_ca_the_connection_fails_naming_the_reason(https_server: tuple[str, Path]) -> None:
    url, _ = https_server
    with pytest.raises(ExportError, match=r"cannot reach ClickHouse at https://127\.0\.0\.1:\d+: the TLS handshake failed"):
        ClickHouseResource(url=url, connect_retry_s=0).get_client()


def test_tls_settings_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ca_cert_file: .*nope.pem is not a readable file"):
        ClickHouseResource(url="https://ch.internal:8443", ca_cert_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ValueError, match="apply to an https:// url only"):
        ClickHouseResource(url="http://ch.internal:8123", verify_tls=False)
