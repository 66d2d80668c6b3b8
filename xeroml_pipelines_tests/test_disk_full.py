"""The local destination runs out of space mid-write (a real, tiny tmpfs): the run fails at once
with an error that says so and what to do, nothing partial is left (not even the staged file),
the previous good file is intact, and once there is room the re-run writes what an undisturbed
run writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance

from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter

DAY = "2025-01-15"


@pytest.fixture
def tiny_disk(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_disk_full_fails_clearly_leaves_nothing_partial_and_the_rerun_is_identical(
    exporter: Exporter, tiny_disk: Path, tmp_path: Path
) -> None:
    on_disk = Exporter(exporter.ch, tiny_disk)
    insert(exporter.ch, "traces", [trace(f"a{i}", f"{DAY} 10:00") for i in range(10)])
    assert on_disk.run(DAY, tables=("traces",)).success
    good, good_manifest = on_disk.path("traces", DAY).read_bytes(), on_disk.manifest("traces", DAY)

    insert(exporter.ch, "traces", [trace(f"b{i:04d}", f"{DAY} 11:00", input="x" * 4000) for i in range(400)])  # ~1.7 MB
    with DagsterInstance.ephemeral() as instance:
        result = on_disk.run(DAY, tables=("traces",), instance=instance, raise_on_error=False, retries=3, retry_delay_s=0)
    assert not result.success
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)  # no retry can free the disk
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data
    message = failure.user_failure_data.description if failure.user_failure_data else failure.error.to_string()
    assert f"{on_disk.path('traces', DAY)}: no space left on the disk" in message and "Free space" in message, message
    assert on_disk.path("traces", DAY).read_bytes() == good
    assert on_disk.manifest("traces", DAY) == good_manifest
    assert not list((tiny_disk / "_staging").glob("*"))

    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    assert on_disk.run(DAY, tables=("traces",)).success
    reference = Exporter(exporter.ch, tmp_path / "reference")
    reference.run(DAY, tables=("traces",))
    assert on_disk.path("traces", DAY).read_bytes() == reference.path("traces", DAY).read_bytes()
    assert on_disk.manifest("traces", DAY)["rows"] == 410
