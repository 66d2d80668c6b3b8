"""Configuration: valid files load; every mistake fails before any work, naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ConfigError, default_config, load_config, parse_config
from xeroml_pipelines.windows import Window

VALID = """
clickhouse:
  url: https://clickhouse.example.com:8443
  user: exporter
  password_env: CLICKHOUSE_PASSWORD
  database: xeroml
exports:
  - name: nightly
    project_id: cm1abc-project_2
    destination: {provider: local, path: /data/exports, prefix: xeroml-export}
    cadence: hourly
    mode: snapshot
    compression: zstd
    layout: hive
    tables: [traces, sessions]
    start_date: 2025-01-01
    lag_minutes: 30
"""


def _hour(start: str) -> Window:
    t = datetime.fromisoformat(start + ":00+00:00")
    return Window(start, t, t + timedelta(hours=1))


def test_valid_config_loads() -> None:
    cfg = parse_config(VALID)
    (e,) = cfg.exports
    assert (e.name, e.project_id, e.cadence, e.mode, e.compression) == (
        "nightly",
        "cm1abc-project_2",
        "hourly",
        "snapshot",
        "zstd",
    )
    assert e.tables == ("traces", "sessions")
    assert e.destination.prefix == "xeroml-export"
    assert e.layout == "hive" and e.object_layout().data_key("traces", _hour("2025-01-15T13")).endswith(
        "xeroml-export/traces/date=2025-01-15/hour=13/data.jsonl.zst"
    )
    assert cfg.clickhouse.password_env == "CLICKHOUSE_PASSWORD"


def test_defaults_fill_in() -> None:
    cfg = parse_config("""
clickhouse: {url: "chdb:///tmp/x"}
exports:
  - {name: e, project_id: p, destination: {provider: local}, start_date: 2025-01-01}
""")
    (e,) = cfg.exports
    assert (e.cadence, e.mode, e.format, e.codec, e.lag_minutes) == ("daily", "incremental", "jsonl", "none", 20)
    assert e.tables == ("traces", "observations", "scores", "sessions")


@pytest.mark.parametrize(
    "old,new,field,message",
    [
        ("provider: local", "provider: dropbox", "exports.0.destination", "provider"),
        ("name: nightly", "name: 'night ly'", "exports.0.name", "plain identifier"),
        ("project_id: cm1abc-project_2", 'project_id: "a\' OR 1=1 --"', "exports.0.project_id", "project_id must be"),
        ("cadence: hourly", "cadence: weekly", "exports.0.cadence", "'weekly' is not one of: daily, hourly"),
        ("mode: snapshot", "mode: full", "exports.0.mode", "incremental"),
        ("compression: zstd", "compression: lz4", "exports.0.compression", "gzip"),
        ("layout: hive", "layout: cubist", "exports.0.layout", "'cubist' is not one of: dated, hive"),
        ("tables: [traces, sessions]", "tables: [traces, spans]", "exports.0.tables.1", "observations"),
        ("tables: [traces, sessions]", "tables: []", "exports.0.tables", "at least one"),
        ("tables: [traces, sessions]", "tables: [traces, traces]", "exports.0.tables", "twice"),
        ("start_date: 2025-01-01", "start_date: 2999-01-01", "exports.0.start_date", "future"),
        ("start_date: 2025-01-01", "start_date: yesterday", "exports.0.start_date", "date"),
        ("lag_minutes: 30", "lag_minutes: -5", "exports.0.lag_minutes", "greater than or equal"),
        ("prefix: xeroml-export", "prefix: ../escape", "exports.0.destination.prefix", "not allowed"),
        ("prefix: xeroml-export", "prefix: /abs", "exports.0.destination.prefix", "relative"),
        ("prefix: xeroml-export", "prefix: s3://bucket/x", "exports.0.destination.prefix", "relative"),
        ("prefix: xeroml-export", "prefix: a//b", "exports.0.destination.prefix", "not allowed"),
        ("database: xeroml", "database: 'x`; DROP'", "clickhouse.database", "plain identifier"),
        ("url: https://clickhouse.example.com:8443", "url: clickhouse.example.com", "clickhouse.url", "must start with"),
        ("url: https://clickhouse.example.com:8443", "url: chdb://relative/db", "clickhouse.url", "absolute path"),
        ("    lag_minutes: 30", "    lag_minutes: 30\n    bucket: typo", "exports.0.bucket", "unknown field"),
        (
            "    lag_minutes: 30",
            "    lag_minutes: 30\n    formt: parquet",
            "exports.0.formt",
            "unknown field; did you mean 'format'?",
        ),
        ("provider: local", "provider: s4", "exports.0.destination.provider", "'s4' is not one of: local, s3, gcs, azure"),
        ("start_date: 2025-01-01", "start_date: 2025-13-01", "exports.0.start_date", "'2025-13-01' is not a date (YYYY-MM-DD)"),
    ],
)
def test_invalid_field_is_named(old: str, new: str, field: str, message: str) -> None:
    assert old in VALID
    with pytest.raises(ConfigError) as err:
        parse_config(VALID.replace(old, new), "exports.yaml")
    text = str(err.value)
    assert "exports.yaml" in text and field in text and message in text, text


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("clickhouse: {url: 'chdb:///x'}\nexports:\n  - {name: e}\n")
    text = str(err.value)
    for field in ("exports.0.project_id", "exports.0.destination", "exports.0.start_date"):
        assert field in text


def test_duplicate_export_names_and_shared_locations_are_rejected() -> None:
    two = (
        VALID
        + """
  - name: nightly
    project_id: other
    destination: {provider: local, path: /data/exports, prefix: other}
    start_date: 2025-01-01
"""
    )
    with pytest.raises(ConfigError, match="unique"):
        parse_config(two)
    shared = two.replace("  - name: nightly\n    project_id: other", "  - name: second\n    project_id: other").replace(
        "prefix: other", "prefix: xeroml-export"
    )
    with pytest.raises(ConfigError, match="overlapping locations"):
        parse_config(shared)
    # one inside another's, with a sibling sorting between them: still found
    local = "{{provider: local, path: /data/exports, prefix: {}}}"
    nested = VALID + "".join(
        f"  - {{name: {name}, project_id: p, start_date: 2025-01-01, destination: {local.format(prefix)}}}\n"
        for name, prefix in (("inner", "xeroml-export/inner"), ("sibling", "xeroml-export-b"))
    )
    with pytest.raises(ConfigError, match="exports 'nightly' and 'inner' write to overlapping locations"):
        parse_config(nested)
    # a common start of the name is not an overlap
    parse_config(nested.replace("prefix: xeroml-export/inner", "prefix: xeroml-exporter"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("exports: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("clickhouse: {url: 'chdb:///x'}\nexports: []", "at least one"),
    ],
)
def test_malformed_files(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_clickhouse_url_is_checked() -> None:
    for bad in ("ftp://host", "chdb://relative/path", "https://", "clickhouse.example.com"):
        with pytest.raises(ValueError, match="url"):
            ClickHouseResource(url=bad)
    ClickHouseResource(url="http://127.0.0.1:8123")


def test_env_var_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exports.yaml"
    path.write_text(VALID)
    monkeypatch.setenv("XEROML_CONFIG", str(path))
    assert load_config().exports[0].name == "nightly"
    monkeypatch.setenv("XEROML_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config()


def test_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XEROML_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg == default_config(tmp_path)
    assert cfg.clickhouse.url == f"chdb://{tmp_path}/xeroml-demo-db"
    (e,) = cfg.exports
    assert (e.name, e.project_id, e.destination.provider) == ("local", "demo", "local")
    assert e.destination.location == str(tmp_path / "xeroml-export")


_CLOUD = "clickhouse: {url: 'chdb:///x'}\nexports:\n  - {name: e, project_id: p, start_date: 2025-01-01, destination: %s}\n"


@pytest.mark.parametrize(
    "destination,field,message",
    [
        ("{provider: s3}", "destination.bucket", "required field missing"),
        ("{provider: gcs}", "destination.bucket", "required field missing"),
        (
            "{provider: azure, default_credential: true, account_url: 'https://a.blob.core.windows.net'}",
            "destination.container",
            "required field missing",
        ),
        ("{provider: s3, bucket: Bad_Bucket}", "destination.bucket", "pattern"),
        ("{provider: s3, bucket: ok-bucket, access_key_id_env: AK}", "destination.s3", "go together"),
        (
            "{provider: s3, bucket: ok-bucket, access_key_id_env: 'AKIA123/secret'}",
            "destination.access_key_id_env",
            "environment variable",
        ),
        ("{provider: s3, bucket: ok-bucket, role_arn: 'not-an-arn'}", "destination.role_arn", "pattern"),
        ("{provider: s3, bucket: ok-bucket, endpoint_url: 'minio:9000'}", "destination.endpoint_url", "http(s)://"),
        ("{provider: s3, bucket: ok-bucket, part_size_mib: 4}", "destination.part_size_mib", "greater than or equal to 5"),
        (
            "{provider: gcs, bucket: ok-bucket, service_account_json_env: K, service_account_file: /k.json}",
            "destination.gcs",
            "not both",
        ),
        ("{provider: azure, container: xeroml}", "destination.azure", "exactly one of"),
        (
            "{provider: azure, container: xeroml, sas_token_env: S, account_key_env: K, account_url: 'https://a.blob.core.windows.net'}",
            "destination.azure",
            "got sas_token_env, account_key_env",
        ),
        ("{provider: azure, container: xeroml, sas_token_env: S}", "destination.azure", "account_url is required"),
        (
            "{provider: azure, container: xeroml, sas_token_env: S, account_url: 'https://a.blob.core.windows.net/?sv=1&sig=abc'}",
            "destination.account_url",
            "must not carry a SAS",
        ),
        (
            "{provider: azure, container: 'a--b', default_credential: true, account_url: 'https://a.blob.core.windows.net'}",
            "destination.container",
            "'--'",
        ),
    ],
)
def test_cloud_destination_errors_name_the_field(destination: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_CLOUD % destination)
    assert f"exports.0.{field}" in str(err.value) and message in str(err.value), str(err.value)


def test_cloud_destinations_parse() -> None:
    cfg = parse_config(
        _CLOUD
        % "{provider: azure, container: xeroml, default_credential: true, account_url: 'https://acct.blob.core.windows.net'}"
    )
    assert cfg.exports[0].destination.location == "azure:https://acct.blob.core.windows.net/xeroml/"


def test_transport_is_https_unless_an_endpoint_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain HTTP only where a URL spells it out (emulators, a local MinIO); every default is TLS."""
    import clickhouse_connect

    seen: dict = {}
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kw: seen.update(kw))
    ClickHouseResource(url="https://clickhouse.example.com").get_client()
    assert (seen["interface"], seen["port"]) == ("https", 8443)

    cfg = parse_config(_CLOUD % "{provider: s3, bucket: ok-bucket, region: eu-west-1}")
    assert cfg.exports[0].destination.client.meta.endpoint_url.startswith("https://")

    with pytest.raises(ConfigError, match="http"):
        parse_config(
            _CLOUD % "{provider: azure, container: xeroml, default_credential: true, account_url: 'acct.blob.core.windows.net'}"
        )


def test_parquet_codec_defaults_to_zstd_and_snappy_is_parquet_only() -> None:
    base = """
clickhouse: {url: "chdb:///tmp/x"}
exports:
  - {name: e, project_id: p, destination: {provider: local}, start_date: 2025-01-01, %s}
"""
    (e,) = parse_config(base % "format: parquet").exports
    assert (e.format, e.codec, e.object_layout().extension) == ("parquet", "zstd", ".parquet")
    (e,) = parse_config(base % "format: parquet, compression: snappy").exports
    assert e.codec == "snappy"
    with pytest.raises(ConfigError, match="snappy is a Parquet codec"):
        parse_config(base % "compression: snappy")
    with pytest.raises(ConfigError, match="format"):
        parse_config(base % "format: csv")


@pytest.mark.parametrize(
    ("destination", "warehouse"),
    [
        ("{provider: local, path: /d}", "{type: duckdb, path: w.duckdb"),
        ("{provider: gcs, bucket: bkt}", "{type: bigquery, project: p, dataset: d"),
        (
            "{provider: s3, bucket: bkt}",
            "{type: snowflake, account: a, user: u, password_env: P, database: D, warehouse: W, stage: S",
        ),
        (
            "{provider: s3, bucket: bkt}",
            "{type: redshift, host: h, database: d, user: u, password_env: P, iam_role_arn: 'arn:aws:iam::123456789012:role/r'",
        ),
    ],
)
def test_every_warehouses_table_prefix_is_a_plain_identifier(destination: str, warehouse: str) -> None:
    """The loads put the prefix into SQL unquoted: in each warehouse it is checked when the
    configuration is read, the field named."""
    text = (
        "clickhouse: {url: 'chdb:///x'}\nexports:\n  - {name: e, project_id: p, start_date: 2025-01-01, "
        f"destination: {destination}, warehouse: {warehouse}, table_prefix: PREFIX}}}}\n"
    )
    assert parse_config(text.replace("PREFIX", "raw_"), "x.yaml").exports[0].warehouse.table_prefix == "raw_"
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace("PREFIX", "'x; DROP TABLE t; --'"), "x.yaml")
    assert "exports.0.warehouse.table_prefix" in str(err.value) and "plain identifier" in str(err.value), str(err.value)
