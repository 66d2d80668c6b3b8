"""The issue's "done when": one YAML with three exports (S3, GCS, Azure) of the demo project
materializes all four tables for two days into the three emulators."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from dagster import AssetKey, materialize

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import parse_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines_tests.support import make_provider

TABLES = ("traces", "observations", "scores", "sessions")
DAYS = ("2025-01-13", "2025-01-14")


@pytest.fixture
def demo_db(chdb_url: str):
    ch = ClickHouseResource(url=chdb_url, database=f"demo_{uuid.uuid4().hex[:10]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=100))
    yield ch
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


def test_one_yaml_three_clouds(demo_db: ClickHouseResource, request, tmp_path, monkeypatch) -> None:
    s3, gcs, azure = (make_provider(n, request, tmp_path) for n in ("s3", "gcs", "azure"))
    for p in (s3, gcs, azure):
        for k, v in p.env.items():
            monkeypatch.setenv(k, v)
    yaml_text = f"""
clickhouse:
  url: {demo_db.url}
  database: {demo_db.database}
exports:
  - name: to_s3
    project_id: demo
    start_date: 2025-01-13
    destination:
      provider: s3
      bucket: {s3.bucket}
      prefix: xeroml-export
      region: us-east-1
      endpoint_url: {s3.endpoint}
      addressing_style: path
      access_key_id_env: TEST_AWS_KEY_ID
      secret_access_key_env: TEST_AWS_SECRET
  - name: to_gcs
    project_id: demo
    start_date: 2025-01-13
    compression: gzip
    destination:
      provider: gcs
      bucket: {gcs.bucket}
      prefix: xeroml-export
      project: test
  - name: to_azure
    project_id: demo
    start_date: 2025-01-13
    compression: zstd
    destination:
      provider: azure
      container: {azure.container}
      prefix: xeroml-export
      connection_string_env: TEST_AZURE_CONNECTION_STRING
"""
    defs = build_definitions(parse_config(yaml_text, "three-clouds.yaml"))
    for export, provider, ext in (("to_s3", s3, ".jsonl"), ("to_gcs", gcs, ".jsonl.gz"), ("to_azure", azure, ".jsonl.zst")):
        assets = [defs.get_assets_def(AssetKey([export, t])) for t in TABLES]
        for day in DAYS:
            assert materialize(assets, partition_key=day, resources=defs.resources).success
        expected = {f"xeroml-export/{t}/{d}{ext}" for t in TABLES for d in DAYS}
        expected |= {f"xeroml-export/_manifests/{t}/{d}.json" for t in TABLES for d in DAYS}
        assert set(provider.keys()) == expected, export
        for t in TABLES:
            manifest = json.loads(provider.get(f"xeroml-export/_manifests/{t}/2025-01-14.json"))
            assert manifest["export"] == export and manifest["project_id"] == "demo" and manifest["rows"] > 0
            assert manifest["compression"] == {".jsonl": "none", ".jsonl.gz": "gzip", ".jsonl.zst": "zstd"}[ext]
