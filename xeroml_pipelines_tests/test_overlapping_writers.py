"""Two and four writers of one partition committing at once, each with different bytes (as when
late rows land between two overlapping runs), on every destination, ten times in a row: every
writer succeeds, the object is one writer's whole version, the manifest is that same writer's,
and nothing staged or locked is left behind.

The writers stage large objects (several S3 parts, GCS chunks, Azure blocks) so their uploads
are in flight together; the commit lock is what keeps one writer's manifest from describing
another's object (test_concurrent_runs.py runs whole exports against each other)."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from xeroml_pipelines.config.destinations import Destination as ConfiguredDestination
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.cutting import Chunk
from xeroml_pipelines.export.jsonl import JsonLines
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.export.writer import PartitionWriter, QueryClock
from xeroml_pipelines.windows import Window
from xeroml_pipelines_tests.providers import PREFIX
from xeroml_pipelines_tests.support import make_provider

SIZES = {"local": {}, "s3": {"part_size_mib": 5}, "gcs": {"chunk_size_mib": 1}, "azure": {"block_size_mib": 1}}
PAYLOAD_MIB = 6  # two S3 parts, six GCS chunks and Azure blocks


def _payload(writer: int) -> bytes:
    line = json.dumps({"id": f"w{writer}", "input": "x" * 1000}).encode() + b"\n"
    return line * (PAYLOAD_MIB * 1024 * 1024 // len(line))


def _write(destination: Destination, stream: ExportStream, window: Window, writer: int, start: threading.Barrier) -> None:
    fmt = JsonLines("none")
    partition = PartitionWriter(destination, Layout(prefix=PREFIX), stream, window, fmt)
    data = _payload(writer)
    start.wait()  # the uploads overlap from their first byte
    chunk = Chunk(window.index, 0, memoryview(data), rows=data.count(b"\n"), tombstones=0, invalid_utf8=0, fingerprint=writer)
    partition.add(chunk)
    partition.commit(QueryClock(), run_id=f"run-{writer}")


def _overlap(destination: Destination, stream: ExportStream, window: Window, writers: int) -> list[BaseException]:
    """One round: every writer stages and commits at once; what they raised."""
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        try:
            _write(destination, stream, window, writer, start)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a writer is still running after 300 s"
    return errors


@pytest.mark.parametrize("writers", [2, 4])
@pytest.mark.parametrize("name", ["local", "s3", "gcs", "azure"])
def test_overlapping_writers_commit_one_whole_version_ten_times(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, writers: int
) -> None:
    provider = make_provider(name, request, tmp_path)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    config = TypeAdapter(ConfiguredDestination).validate_python(provider.destination(**SIZES[name]))
    window = Window("2025-01-13", datetime(2025, 1, 13, tzinfo=UTC), datetime(2025, 1, 14, tzinfo=UTC))
    stream = ExportStream("nightly", "p1", "traces", "incremental", (window,), source=None)  # type: ignore[arg-type]
    payloads = {hashlib.sha256(_payload(w)).hexdigest(): w for w in range(writers)}
    with config.process_config_and_initialize_cm() as destination:
        for attempt in range(10):
            errors = _overlap(destination, stream, window, writers)
            assert not errors, (attempt, errors)

            data = provider.get(f"{PREFIX}/traces/2025-01-13.jsonl") or b""
            manifest = json.loads(provider.get(f"{PREFIX}/_manifests/traces/2025-01-13.json") or b"{}")
            digest = hashlib.sha256(data).hexdigest()
            assert digest in payloads, f"attempt {attempt}: the object is no writer's whole version"
            # the manifest is the same writer's as the object next to it
            assert manifest["run_id"] == f"run-{payloads[digest]}", attempt
            assert manifest["sha256"] == digest and manifest["bytes"] == len(data), attempt
            assert provider.leftovers() == [], attempt
