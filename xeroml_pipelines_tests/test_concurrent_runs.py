"""Two and four runs of the same partition at once (say, the hourly schedule's and a backfill's),
against a ClickHouse server all can query at the same time: the published object is always one complete
version (each run stages privately and publishes whole), the manifest describes exactly the
object next to it, nothing staged is left, and the result is what one run alone writes.

In a deployment the `xeroml_clickhouse` pool (dagster.yaml, limit 1) queues such runs one after
the other; this is what happens when they overlap anyway (two deployments, a manual run)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from datetime import date

import pytest

from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD, CLICKHOUSE_PASSWORD_ENV, Exporter, make_provider, server_database

DAY = "2025-01-13"
TABLES = ("traces", "observations", "scores", "sessions")


@pytest.mark.parametrize("writers", [2, 4])
@pytest.mark.parametrize("name", ["local", "s3", "gcs", "azure"])
def test_runs_of_one_partition_at_once_publish_one_complete_version(
    clickhouse_server, request, tmp_path, monkeypatch, name: str, writers: int
) -> None:
    monkeypatch.setenv(CLICKHOUSE_PASSWORD_ENV, CLICKHOUSE_PASSWORD)
    ch = server_database(clickhouse_server, f"c_{uuid.uuid4().hex[:10]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=1, traces_per_day=800, text_scale=2))
    provider = make_provider(name, request, tmp_path)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    dest = provider.destination(
        **{"s3": {"part_size_mib": 5}, "gcs": {"chunk_size_mib": 1}, "azure": {"block_size_mib": 1}}.get(name, {})
    )
    exporter = Exporter(ch, tmp_path / "unused", project_id="demo", password_env=CLICKHOUSE_PASSWORD_ENV)

    reference = Exporter(ch, tmp_path / "reference", project_id="demo", password_env=CLICKHOUSE_PASSWORD_ENV)
    assert reference.run(DAY).success

    outcomes: list[bool] = []
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def run() -> None:
        try:
            start.wait()
            began = time.monotonic()
            outcomes.append(exporter.run(DAY, destination=dest).success)
            spans.append((began, time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and outcomes == [True] * writers, errors
    assert max(b for b, _ in spans) < min(e for _, e in spans)  # the runs really overlapped

    for table in TABLES:
        data = provider.get(f"xeroml-export/{table}/{DAY}.jsonl")
        manifest = json.loads(provider.get(f"xeroml-export/_manifests/{table}/{DAY}.json"))
        assert data == reference.path(table, DAY).read_bytes(), table  # one whole version, never a mix
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["bytes"] == len(data)
        assert manifest["rows"] == reference.manifest(table, DAY)["rows"]
    assert provider.leftovers() == []
