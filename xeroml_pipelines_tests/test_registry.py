"""The export registry (issue 22, destinations as data): entries shaped like `exports:` items,
checked by the configuration's rules, managed by `xeroml destinations ...` with plain messages and
exit codes, credentials encrypted at rest (never printed, never in the database's bytes), keys
rotated, a probe object written and removed in the real destination; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.registry.entries import parse_entry
from xeroml_pipelines.registry.keyring import Keyring, new_key
from xeroml_pipelines.registry.store import Registry
from xeroml_pipelines_tests.postgres import Postgres, required_bindir
from xeroml_pipelines_tests.support import make_provider

SECRET = "sup3r-s3cret-value-never-shown"


def _entries(bucket: str = "globex-bucket", endpoint: str | None = None) -> list[dict]:
    s3 = {"provider": "s3", "bucket": bucket, "region": "us-east-1", "prefix": "xeroml-export"}
    if endpoint:
        s3 |= {"endpoint_url": endpoint, "addressing_style": "path"}
    return [
        {"name": "acme", "project_id": "acme", "start_date": "2025-01-01", "destination": {"provider": "local", "path": "out"}},
        {
            "name": "globex",
            "project_id": "globex",
            "start_date": "2025-01-01",
            "cadence": "hourly",
            "tables": ["traces", "enriched_observations"],
            "destination": s3,
            "secrets": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET},
        },
    ]


def _cli(
    tmp_path: Path, *args: str, keys: str | None = None, stdin: str = "", allow: str | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "XEROML_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.sqlite'}"}
    if allow is not None:
        env["XEROML_ALLOW_ENDPOINTS"] = allow
    if keys is not None:
        env["XEROML_REGISTRY_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "destinations", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        input=stdin,
        timeout=120,
    )


def test_cli_manages_entries_and_never_shows_a_credential(tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "entries.yaml").write_text(yaml.safe_dump(_entries()))
    runs = [_cli(tmp_path, "import", "entries.yaml", keys=key)]
    assert runs[-1].returncode == 0 and "registered 2 export(s)" in runs[-1].stdout
    runs.append(_cli(tmp_path, "list"))
    assert [line.split()[0] for line in runs[-1].stdout.splitlines()] == ["NAME", "acme", "globex"]
    globex_row = runs[-1].stdout.splitlines()[2].split()
    assert globex_row[2].startswith("s3://globex-bucket/") and globex_row[-1] == "enabled", globex_row
    runs.append(_cli(tmp_path, "show", "globex"))
    shown = runs[-1].stdout
    assert "stored credential: secret_access_key (encrypted)" in shown and "bucket: globex-bucket" in shown
    runs.append(_cli(tmp_path, "test", "acme"))
    assert runs[-1].returncode == 0 and "ok: wrote, read and removed a probe object" in runs[-1].stdout
    assert not any((tmp_path / "out").rglob("*.*")), "the probe is removed"
    runs.append(_cli(tmp_path, "disable", "globex", "--reason", "bucket gone"))
    runs.append(_cli(tmp_path, "show", "globex"))
    assert "state: disabled by its owner (bucket gone)" in runs[-1].stdout
    runs.append(_cli(tmp_path, "enable", "globex"))
    runs.append(_cli(tmp_path, "remove", "acme"))
    runs.append(_cli(tmp_path, "list"))
    assert [line.split()[0] for line in runs[-1].stdout.splitlines()] == ["NAME", "globex"]
    # mistakes: plain lines, exit 2, never a traceback, never a silent success
    for args, message in (
        (("show", "acme"), "no registered export named 'acme'"),
        (("enable", "nobody"), "no registered export named 'nobody'"),
        (("import", "entries.yaml"), "already registered: globex"),
        (("import", "missing.yaml"), "no such file: missing.yaml"),
    ):
        runs.append(_cli(tmp_path, *args, keys=key))
        assert runs[-1].returncode == 2 and message in runs[-1].stderr and "Traceback" not in runs[-1].stderr, args
    for run in runs:
        assert SECRET not in run.stdout + run.stderr
    assert SECRET.encode() not in (tmp_path / "registry.sqlite").read_bytes()


def test_entries_are_checked_by_the_configurations_rules(tmp_path: Path) -> None:
    good = _entries()[1]
    bad = [
        ({**good, "cadence": "weekly"}, "cadence: 'weekly' is not one of: daily, hourly"),
        ({**good, "tables": ["traces", "spans"]}, "tables.1: unknown table 'spans'"),
        ({**good, "secrets": {"password": "x"}}, "secrets.password: not a credential of provider 's3'"),
        ({**good, "secrets": {"access_key_id": "AKIA"}}, "access_key_id_env and secret_access_key_env go together"),
        (
            {**good, "destination": {**good["destination"], "secret_access_key_env": "AWS_SECRET"}},
            "secrets.secret_access_key: the entry also names secret_access_key_env",
        ),
        ({**_entries()[0], "secrets": {"token": "x"}}, "provider 'local' (it stores none)"),
    ]
    for raw, message in bad:
        with pytest.raises(ConfigError, match="entry 1") as e:
            parse_entry(raw, "entries.yaml, entry 1")
        assert message in str(e.value), str(e.value)
    # one bad entry in a file: none of them is registered
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump([_entries()[0], {**good, "cadence": "weekly"}]))
    run = _cli(tmp_path, "import", "mixed.yaml", keys=new_key())
    assert run.returncode == 2 and "mixed.yaml, entry 1" in run.stderr and "cadence" in run.stderr
    assert "no registered exports" in _cli(tmp_path, "list").stdout
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump([_entries()[0], _entries()[0]]))
    run = _cli(tmp_path, "import", "twice.yaml")
    assert run.returncode == 2 and "entries named twice: acme" in run.stderr


def test_keys_rotate_and_a_missing_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}").create()
    old, new = new_key(), new_key()
    entry = parse_entry(_entries()[1], "entries")
    monkeypatch.delenv("XEROML_REGISTRY_KEYS", raising=False)
    with pytest.raises(ConfigError, match="XEROML_REGISTRY_KEYS is not set"):
        registry.put([entry])
    assert registry.listing() == []
    registry.put([entry], keyring=Keyring([old]))
    assert registry.open_secrets("globex", Keyring([old]))["secret_access_key"] == SECRET
    assert registry.rotate(Keyring([new, old])) == 1
    assert registry.open_secrets("globex", Keyring([new]))["secret_access_key"] == SECRET  # the old key may go
    with pytest.raises(ConfigError, match="do not open with any key"):
        registry.open_secrets("globex", Keyring([old]))
    with pytest.raises(ConfigError, match="malformed key"):
        Keyring(["not-a-key"])
    assert registry.get("globex").entry.secrets is None  # read back sealed


def test_the_probe_uses_the_stored_credentials_on_s3(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    s3 = make_provider("s3", request, tmp_path)
    key = new_key()
    entries = _entries(bucket=s3.bucket, endpoint=s3.endpoint)
    (tmp_path / "entries.yaml").write_text(yaml.safe_dump(entries))
    refused = _cli(tmp_path, "import", "entries.yaml", keys=key)  # the emulator is on 127.0.0.1
    assert refused.returncode == 2 and "resolves to 127.0.0.1, not a public address" in refused.stderr
    assert _cli(tmp_path, "import", "entries.yaml", keys=key, allow="127.0.0.1").returncode == 0
    assert "XEROML_ALLOW_ENDPOINTS" in _cli(tmp_path, "test", "globex", keys=key).stderr  # checked again before use
    run = _cli(tmp_path, "test", "globex", keys=key, allow="127.0.0.0/8")
    assert run.returncode == 0, run.stderr
    assert s3.keys() == []  # written, read back, removed
    run = _cli(tmp_path, "test", "globex", keys=new_key(), allow="127.0.0.1")  # not the key it was sealed with
    assert run.returncode == 2 and "do not open with any key" in run.stderr
    s3.client.delete_bucket(Bucket=s3.bucket)
    run = _cli(tmp_path, "test", "globex", keys=key, allow="127.0.0.1")
    assert run.returncode == 1 and s3.bucket in run.stderr and SECRET not in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "destination,secrets,message",
    [
        ({"endpoint_url": "http://169.254.169.254"}, {}, "169.254.169.254, not a public address"),  # cloud metadata
        ({"endpoint_url": "http://10.1.2.3:9000"}, {}, "10.1.2.3, not a public address"),
        ({"endpoint_url": "http://localhost:9000"}, {}, "localhost resolves to"),
        ({"endpoint_url": "http://[::1]:9000"}, {}, "::1, not a public address"),
        ({"endpoint_url": "http://[::ffff:127.0.0.1]:9000"}, {}, "not a public address"),
        ({"sts_endpoint_url": "http://192.168.0.10"}, {}, "destination.sts_endpoint_url"),
        (
            {"provider": "azure", "container": "exports"},
            {
                "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;BlobEndpoint=http://169.254.169.254/a;"
            },
            "secrets.connection_string (BlobEndpoint)",
        ),
        ({"provider": "local", "path": "/etc"}, {}, "a relative path without '..'"),
        ({"provider": "local", "path": "out/../../etc"}, {}, "a relative path without '..'"),
        ({"provider": "gcs", "bucket": "bkt", "service_account_file": "/etc/key.json"}, {}, "cannot read a file"),
        (  # the platform's own secrets, sent to the customer's endpoint
            {"access_key_id_env": "XEROML_REGISTRY_KEYS", "secret_access_key_env": "XEROML_REGISTRY_KEYS"},
            {},
            "XEROML_REGISTRY_KEYS is not an environment variable a registered export may name",
        ),
    ],
)
def test_customer_endpoints_and_paths_cannot_reach_inside_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destination: dict, secrets: dict, message: str
) -> None:
    monkeypatch.delenv("XEROML_ALLOW_ENDPOINTS", raising=False)
    base = {"provider": "s3", "bucket": "bkt", "region": "us-east-1"}
    if destination.get("provider") in ("azure", "local", "gcs"):
        base = {}
    raw = {"name": "e", "project_id": "p", "start_date": "2025-01-01", "destination": {**base, **destination}}
    if secrets:
        raw["secrets"] = secrets
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}").create()
    with pytest.raises(ConfigError) as e:
        registry.put([parse_entry(raw, "entries")], keyring=Keyring([new_key()]))
    assert message in str(e.value)
    assert registry.listing() == []
    # a public address passes; the operator can allow an inside one, by network or by host
    plain = {k: v for k, v in raw.items() if k != "secrets"}
    public = {
        **plain,
        "destination": {"provider": "s3", "bucket": "bkt", "region": "us-east-1", "endpoint_url": "http://8.8.8.8"},
    }
    registry.put([parse_entry(public, "entries")])
    monkeypatch.setenv("XEROML_ALLOW_ENDPOINTS", "10.0.0.0/8, localhost")
    inside = {**public, "name": "f", "destination": {**public["destination"], "endpoint_url": "http://10.1.2.3:9000"}}
    registry.put([parse_entry(inside, "entries")])
    monkeypatch.setenv("XEROML_ALLOW_ENV_REFS", "CUSTOMER_*")  # and allow env vars by name or prefix
    by_env = {"access_key_id_env": "CUSTOMER_KEY_ID", "secret_access_key_env": "CUSTOMER_SECRET"}
    registry.put([parse_entry({**public, "name": "g", "destination": {**public["destination"], **by_env}}, "entries")])


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    found = required_bindir()
    server = Postgres(found).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_registry_on_postgresql(postgres: Postgres) -> None:
    postgres.query("CREATE SCHEMA IF NOT EXISTS xeroml")
    url = f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.db}?options=-csearch_path%3Dxeroml"
    registry = Registry(url).create()
    keyring = Keyring([new_key()])
    registry.put([parse_entry(e, "entries") for e in _entries()], keyring=keyring)
    assert [r.name for r in registry.listing()] == ["acme", "globex"]
    assert postgres.query("SELECT count(*) FROM xeroml.xeroml_export_registry") == "2"
    assert SECRET not in postgres.query("SELECT secrets FROM xeroml.xeroml_export_registry WHERE name = 'globex'")
    registry.set_enabled("globex", False, "bucket gone")
    again = Registry(url)  # another process's view: the state is in the database
    assert (again.get("globex").entry.enabled, again.get("globex").disabled_reason) == (False, "bucket gone")
    assert again.open_secrets("globex", keyring) == {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}
    with pytest.raises(ConfigError, match="already registered: acme"):
        again.put([parse_entry(_entries()[0], "entries")])
    registry.close()
    again.close()
