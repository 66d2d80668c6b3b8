"""The destination contract, the same tests for the local folder, S3, GCS and Azure Blob, each
against its real emulator on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from xeroml_pipelines.destinations.azure_upload import BlockUpload
from xeroml_pipelines.destinations.gcs import _ResumableUpload
from xeroml_pipelines.destinations.s3 import _MultipartUpload
from xeroml_pipelines_tests.emulators import TcpProxy, azurite_connection_string, fake_gcs, free_port
from xeroml_pipelines_tests.factories import insert, observation, score, trace
from xeroml_pipelines_tests.providers import PREFIX, Provider
from xeroml_pipelines_tests.support import Exporter

TABLES = ("traces", "observations", "scores", "sessions", "enriched_observations")  # every table, the opt-in one too
UPLOADS = {"s3": _MultipartUpload, "gcs": _ResumableUpload, "azure": BlockUpload}
URI_SCHEME = {"local": "file://", "s3": "s3://", "gcs": "gs://", "azure": "http://127.0.0.1"}


def data_key(table: str, rel: str, ext: str = ".jsonl", layout: str = "dated") -> str:
    if layout == "hive":
        day, _, hour = rel.partition("/")
        return f"{PREFIX}/{table}/date={day}/" + (f"hour={hour}/" if hour else "") + f"data{ext}"
    return f"{PREFIX}/{table}/{rel}{ext}"


def manifest_key(table: str, rel: str) -> str:
    return f"{PREFIX}/_manifests/{table}/{rel}.json"


def _seed(exporter: Exporter, n: int = 20, payload: int = 10) -> None:
    insert(
        exporter.ch,
        "traces",
        [trace(f"t{i:05d}", "2025-01-15 10:00", session_id=f"s{i % 5}", input="x" * payload) for i in range(n)],
    )
    insert(
        exporter.ch, "observations", [observation(f"o{i:05d}", f"t{i:05d}", "2025-01-15 10:00", total_cost=0.5) for i in range(n)]
    )
    insert(exporter.ch, "scores", [score(f"c{i:05d}", "2025-01-15 10:00", trace_id=f"t{i:05d}") for i in range(n)])


def test_layout_manifests_and_metadata(exporter: Exporter, provider: Provider) -> None:
    _seed(exporter)
    result = exporter.run("2025-01-15", tables=TABLES, destination=provider.destination())
    assert provider.keys() == sorted(
        [data_key(t, "2025-01-15") for t in TABLES] + [manifest_key(t, "2025-01-15") for t in TABLES]
    )
    for table in TABLES:
        data = provider.get(data_key(table, "2025-01-15"))
        manifest = json.loads(provider.get(manifest_key(table, "2025-01-15")))
        assert manifest["rows"] == len(data.splitlines()) == (5 if table == "sessions" else 20)
        assert manifest["bytes"] == len(data) and manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["object_key"] == data_key(table, "2025-01-15")
        assert manifest["uri"].startswith(URI_SCHEME[provider.name]) and manifest["uri"].endswith(data_key(table, "2025-01-15"))
        assert all(json.loads(line)["project_id"] == "p1" for line in data.splitlines())
    uris = {
        e.materialization.asset_key.path[-1]: e.materialization.metadata["uri"].value
        for e in result.get_asset_materialization_events()
    }
    assert uris["traces"] == json.loads(provider.get(manifest_key("traces", "2025-01-15")))["uri"]


def test_rerun_replaces_the_object_with_identical_bytes(exporter: Exporter, provider: Provider) -> None:
    _seed(exporter)
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    first = provider.get(data_key("traces", "2025-01-15"))
    insert(exporter.ch, "traces", [trace("t00003", "2025-01-15 12:00", timestamp="2025-01-15 10:00", name="updated")])
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    second = provider.get(data_key("traces", "2025-01-15"))
    assert second != first and b'"name":"updated"' in second and len(second.splitlines()) == 20
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    assert provider.get(data_key("traces", "2025-01-15")) == second


def test_zero_row_partition_and_stale_object(exporter: Exporter, provider: Provider) -> None:
    exporter.run("2025-01-14", tables=("traces",), destination=provider.destination())
    assert provider.keys() == [manifest_key("traces", "2025-01-14")]
    assert json.loads(provider.get(manifest_key("traces", "2025-01-14")))["rows"] == 0

    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    assert provider.get(data_key("traces", "2025-01-15")) is not None
    # updated later: the 15th is now empty and its old object must not stay behind
    insert(exporter.ch, "traces", [trace("a", "2025-01-17 10:00", timestamp="2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    assert provider.get(data_key("traces", "2025-01-15")) is None
    assert json.loads(provider.get(manifest_key("traces", "2025-01-15")))["object_key"] is None


def test_compression_change_leaves_one_object(exporter: Exporter, provider: Provider) -> None:
    _seed(exporter)
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination(), compression="zstd")
    listed = provider.keys()  # the bucket's object keys, as its own client lists them
    assert [k for k in listed if k.startswith(f"{PREFIX}/traces/")] == [data_key("traces", "2025-01-15", ".jsonl.zst")]


def test_hive_layout_keys_rerun_and_switch(exporter: Exporter, provider: Provider) -> None:
    """Hive-style folders hold the same bytes as the dated layout; switching layouts leaves one
    object per partition; manifests stay outside the table folders."""
    _seed(exporter)
    insert(exporter.ch, "traces", [trace("h1", "2025-01-16 13:30")])
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination())
    dated = provider.get(data_key("traces", "2025-01-15"))

    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination(), layout="hive")
    hive_key = data_key("traces", "2025-01-15", layout="hive")
    assert hive_key == f"{PREFIX}/traces/date=2025-01-15/data.jsonl"
    assert provider.keys() == [manifest_key("traces", "2025-01-15"), hive_key]  # the dated object is gone
    assert provider.get(hive_key) == dated
    manifest = json.loads(provider.get(manifest_key("traces", "2025-01-15")))
    assert manifest["object_key"] == hive_key and unquote(manifest["uri"]).endswith(hive_key)  # file: URIs escape "="

    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination(), layout="hive")
    assert provider.get(hive_key) == dated  # a rerun is byte-identical

    hourly = provider.destination(prefix=f"{PREFIX}-hourly")
    exporter.run("2025-01-16-13:00", tables=("traces",), destination=hourly, layout="hive", cadence="hourly")
    key = f"{PREFIX}-hourly/traces/date=2025-01-16/hour=13/data.jsonl"
    assert [json.loads(line)["id"] for line in provider.get(key).splitlines()] == ["h1"]
    assert provider.get(f"{PREFIX}-hourly/_manifests/traces/2025-01-16/13.json") is not None


def test_parquet_objects_rerun_and_format_switch(exporter: Exporter, provider: Provider) -> None:
    """Parquet in hive folders: the bytes of a local export, a byte-identical rerun, one object
    per partition when the format changes, the format in the manifest."""
    _seed(exporter, n=300)
    exporter.run("2025-01-15", tables=TABLES, destination=provider.destination())
    files = {"layout": "hive", "format": "parquet"}
    exporter.run("2025-01-15", tables=TABLES, destination=provider.destination(), **files)
    listed = provider.keys()  # the bucket's object keys, as its own client lists them
    for table in TABLES:
        key = data_key(table, "2025-01-15", ".parquet", layout="hive")
        assert [k for k in listed if k.startswith(f"{PREFIX}/{table}/")] == [key]  # the .jsonl is gone
        stored = provider.get(key)
        assert pq.ParquetFile(io.BytesIO(stored)).metadata.num_rows == (300 if table != "sessions" else 5)
        manifest = json.loads(provider.get(manifest_key(table, "2025-01-15")))
        assert (manifest["file_format"], manifest["compression"], manifest["object_key"]) == ("parquet", "zstd", key)
        assert manifest["sha256"] == hashlib.sha256(stored).hexdigest() and manifest["bytes"] == len(stored)
        exporter.run("2025-01-15", tables=(table,), **files)  # into the plain local folder: the reference
        assert stored == (exporter.out / table / "date=2025-01-15" / "data.parquet").read_bytes()
    exporter.run("2025-01-15", tables=TABLES, destination=provider.destination(), **files)
    for table in TABLES:
        assert (
            provider.get(data_key(table, "2025-01-15", ".parquet", layout="hive"))
            == (exporter.out / table / "date=2025-01-15" / "data.parquet").read_bytes()
        )


def _small_parts(name: str) -> dict:
    return {"s3": {"part_size_mib": 5}, "gcs": {"chunk_size_mib": 1}, "azure": {"block_size_mib": 1}, "local": {}}[name]


def test_large_object_spans_several_parts(exporter: Exporter, provider: Provider) -> None:
    _seed(exporter, n=2600, payload=5000)  # ~13.5 MB of traces
    exporter.run("2025-01-15", tables=("traces",))  # the plain local export is the reference
    reference = (exporter.out / "traces" / "2025-01-15.jsonl").read_bytes()
    assert len(reference) > 2 * 5 * 1024 * 1024
    exporter.run("2025-01-15", tables=("traces",), destination=provider.destination(**_small_parts(provider.name)))
    stored = provider.get(data_key("traces", "2025-01-15"))
    assert stored == reference
    if provider.name == "s3":
        etag = provider.client.head_object(Bucket=provider.bucket, Key=data_key("traces", "2025-01-15"))["ETag"]
        assert etag.strip('"').endswith("-3")  # three parts
        assert provider.incomplete_uploads() == []
    if provider.name == "azure":
        committed, _ = provider.handle.get_blob_client(data_key("traces", "2025-01-15")).get_block_list("committed")
        assert len(committed) == 14


@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_missing_bucket_fails_clearly_without_retry(exporter: Exporter, request, tmp_path, monkeypatch, name: str) -> None:
    from xeroml_pipelines_tests.support import make_provider

    provider = make_provider(name, request, tmp_path)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    _seed(exporter, n=3)
    field = "container" if name == "azure" else "bucket"
    with pytest.raises(Exception) as err:
        exporter.run("2025-01-15", tables=("traces",), destination=provider.destination(**{field: "no-such-bucket-here"}))
    message = str(err.value)
    assert "no-such-bucket-here" in message and "does not exist" in message, message


def _route_through(provider: Provider, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch) -> dict:
    if provider.name == "s3":
        return {"endpoint_url": proxy.url}
    if provider.name == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    else:
        monkeypatch.setenv("TEST_AZURE_CONNECTION_STRING", azurite_connection_string(proxy.url))
    return {}


# Parquet without a codec: the 13 MB of text stay 13 MB, so the cut falls mid-upload.
@pytest.mark.parametrize("layout,file_format", [("dated", "jsonl"), ("hive", "jsonl"), ("hive", "parquet")])
@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_server_lost_mid_upload_leaves_nothing_and_a_retry_succeeds(
    exporter, request, tmp_path, monkeypatch, name: str, layout: str, file_format: str
) -> None:
    from xeroml_pipelines_tests.support import make_provider

    if name == "gcs":
        proxy_port = free_port()
        server = fake_gcs(tmp_path, tmp_path / "gcs-data", public_port=proxy_port).start()
        request.addfinalizer(server.stop)
        proxy = TcpProxy(server.port, port=proxy_port)
        provider = make_provider(name, request, tmp_path, endpoint=server.url)
    else:
        server = request.getfixturevalue({"s3": "moto_server", "azure": "azurite_server"}[name])
        proxy = TcpProxy(server.port)
        provider = make_provider(name, request, tmp_path)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    try:
        dest = provider.destination(**_small_parts(name), **_route_through(provider, proxy, monkeypatch))
        _seed(exporter, n=20)
        ext = ".parquet" if file_format == "parquet" else ".jsonl"
        key = data_key("traces", "2025-01-15", ext, layout=layout)
        files = {"layout": layout, "format": file_format, "compression": "none"}
        exporter.run("2025-01-15", tables=("traces",), destination=dest, **files)
        good = provider.get(key)
        assert good is not None
        good_manifest = provider.get(manifest_key("traces", "2025-01-15"))

        # distinct values: Parquet's dictionary encoding would fold repeated ones to nothing
        big = [
            trace(f"big{i:05d}", "2025-01-15 11:00", input=(hashlib.sha256(b"%d" % i).hexdigest() * 79)[:5000])
            for i in range(2600)
        ]
        insert(exporter.ch, "traces", big)
        upload_class = UPLOADS[name]
        real_write = upload_class.write
        sent = {"bytes": 0}

        def write_then_cut(self, data: bytes) -> None:
            real_write(self, data)
            sent["bytes"] += len(data)
            if sent["bytes"] > 6 * 1024 * 1024:
                proxy.cut()

        monkeypatch.setattr(upload_class, "write", write_then_cut)
        with pytest.raises(Exception, match="cannot reach|unavailable"):
            exporter.run("2025-01-15", tables=("traces",), destination=dest, **files)
        proxy.restore()
        # read directly from the emulator: the previous object and manifest are untouched
        assert provider.get(key) == good
        assert provider.get(manifest_key("traces", "2025-01-15")) == good_manifest

        monkeypatch.setattr(upload_class, "write", real_write)
        exporter.run("2025-01-15", tables=("traces",), destination=dest, **files)
        stored = provider.get(key)
        assert (
            pq.ParquetFile(io.BytesIO(stored)).metadata.num_rows if file_format == "parquet" else len(stored.splitlines())
        ) == 2620
        # the reference: the same partition written to a local folder
        exporter.run("2025-01-15", tables=("traces",), **files)
        assert stored == (exporter.out / key.removeprefix(f"{PREFIX}/")).read_bytes()
    finally:
        proxy.close()


def test_s3_sse_kms_and_path_style(exporter: Exporter, request, tmp_path, monkeypatch) -> None:
    from xeroml_pipelines_tests.support import make_provider

    provider = make_provider("s3", request, tmp_path)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    key_id = boto3_kms_key(provider.endpoint)
    _seed(exporter, n=3)
    exporter.run(
        "2025-01-15", tables=("traces",), destination=provider.destination(sse_kms_key_id=key_id, addressing_style="path")
    )
    for key in (data_key("traces", "2025-01-15"), manifest_key("traces", "2025-01-15")):
        head = provider.client.head_object(Bucket=provider.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


def boto3_kms_key(endpoint: str) -> str:
    import boto3

    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    return kms.create_key()["KeyMetadata"]["KeyId"]
