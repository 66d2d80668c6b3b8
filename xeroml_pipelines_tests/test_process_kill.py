"""A run's process killed (SIGKILL) mid-export: nothing partial is visible, the previous files and
manifests are intact, the staged leftover is removed by the next run, which writes the same bytes.

The run is a real `xeroml export` process (its own embedded engine, as a deployment's run worker
has), killed while it is writing the observations file. Its runs are recorded in a persistent
instance with the project's pools: the killed run held the ClickHouse pool's only slot, which the
next run must get back rather than wait for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

DAY = "2025-01-13"
TABLES = ("traces", "observations", "scores", "sessions")


def _xeroml(config: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("xeroml")
    env = {**os.environ, "XEROML_CONFIG": str(config)}
    env.pop("DAGSTER_HOME", None)
    # the project's own .dagster_home is the user's: the CLI's is the test folder's
    return subprocess.Popen(
        [str(exe), *args], cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def _published(out: Path) -> dict[str, bytes]:
    """What a reader of the folder sees: data files and manifests (not the writer's own folders)."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] not in ("_staging", "_locks")
    }


# Parquet without a codec: a file as large as the lines, so the kill falls mid-upload.
@pytest.mark.parametrize("layout,file_format", [("dated", "jsonl"), ("hive", "jsonl"), ("hive", "parquet")])
def test_sigkill_mid_export_leaves_nothing_partial_and_the_next_run_is_identical(
    tmp_path: Path, layout: str, file_format: str
) -> None:
    out = tmp_path / "export"
    config = tmp_path / "xeroml.yaml"
    (tmp_path / "dagster.yaml").write_bytes((REPO / "dagster.yaml").read_bytes())  # pools: one ClickHouse slot
    config.write_text(
        yaml.safe_dump(
            {
                "clickhouse": {"url": f"chdb://{tmp_path / 'engine'}"},
                "exports": [
                    {
                        "name": "exp",
                        "project_id": "demo",
                        "start_date": DAY,
                        "destination": {"provider": "local", "path": str(out)},
                        "retries": 0,
                        "layout": layout,
                        "format": file_format,
                        "compression": "none",
                    }
                ],
            }
        )
    )
    # ~100k observations (~70 MB of lines): writing them takes long enough to be caught in the act
    _finish(_xeroml(config, "seed", "--start", DAY, "--days", "1", "--traces-per-day", "20000"))
    _finish(_xeroml(config, "export", DAY))
    good = _published(out)
    ext = ".parquet" if file_format == "parquet" else ".jsonl"
    observations = f"observations/{DAY}{ext}" if layout == "dated" else f"observations/date={DAY}/data{ext}"
    assert observations in good and len(good[observations]) > 20 << 20

    proc = _xeroml(config, "export", DAY)
    staging = out / "_staging"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [p for p in staging.glob("*.part") if p.stat().st_size > 8 << 20]
        if parts:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    orphans = list(staging.glob("*.part"))
    assert orphans  # the kill left its staged file behind ...
    assert _published(out) == good  # ... but nothing a reader sees changed

    rerun = _finish(_xeroml(config, "export", DAY))
    assert "left unfinished by a killed xeroml process: marked failed, its pool slots freed" in rerun
    assert not any(p in orphans for p in staging.glob("*.part"))  # the next run removed the leftovers
    assert not list(staging.glob("*.part"))
    assert {k: v for k, v in _published(out).items() if not k.startswith("_manifests")} == {
        k: v for k, v in good.items() if not k.startswith("_manifests")
    }
