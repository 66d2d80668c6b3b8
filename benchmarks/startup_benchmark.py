"""Start-up benchmark: what a user waits for before anything happens, whole processes, medians.

    python benchmarks/startup_benchmark.py --repeats 5

- `xeroml --help` and `xeroml ddl` (commands that run nothing): wall time of the process;
- `xeroml export DAY` of a local-only configuration (the embedded defaults, one tiny day): the
  seconds from the process's start (its start time in /proc) to its first ClickHouse client,
  and the whole command (export, its checks, its DuckDB load);
- a run worker's equivalent: `dagster asset materialize` of one partition of one table from the
  code location (loads the definitions the way a run worker does), to its first ClickHouse
  client, and the whole process.
The hook that stamps the first client is installed by `-c`, not by the product: it wraps
ClickHouseResource.get_client, through which every query passes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
DAY = "2025-01-13"

HOOK = """
import os, sys
def _since_start():
    fields = open('/proc/self/stat').read().rsplit(')', 1)[1].split()
    started = int(fields[19]) / os.sysconf('SC_CLK_TCK')
    return float(open('/proc/uptime').read().split()[0]) - started
from xeroml_pipelines.clickhouse import resource as _r
_get = _r.ClickHouseResource.get_client
def _stamped(self):
    client = _get(self)
    if not getattr(_r, '_stamped', False):
        _r._stamped = True
        print(f'FIRST_CLIENT {_since_start():.3f}', file=sys.stderr, flush=True)
    return client
_r.ClickHouseResource.get_client = _stamped
"""


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float | None]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed:\n{done.stderr[-3000:]}")
    first = [float(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("FIRST_CLIENT ")]
    return wall, (first[0] if first else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xeroml-startup-"))
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME", "XEROML_HOME")}
    subprocess.run([str(BIN / "xeroml"), "seed", "--days", "1", "--traces-per-day", "10"], cwd=root, env=env, check=True)
    subprocess.run([str(BIN / "xeroml"), "export", DAY], cwd=root, env=env, check=True, capture_output=True)  # instance made
    cli = [sys.executable, "-c", HOOK + "from xeroml_pipelines.cli import main; sys.exit(main())"]
    dagster = [
        sys.executable,
        "-c",
        HOOK + "import runpy; sys.argv[0] = 'dagster'; runpy.run_module('dagster', run_name='__main__')",
    ]
    cases = {
        "xeroml --help": ([str(BIN / "xeroml"), "--help"], env),
        "xeroml ddl": ([str(BIN / "xeroml"), "ddl"], env),
        "xeroml export (local)": ([*cli, "export", DAY], env),
        "run worker (dagster asset materialize)": (
            [*dagster, "asset", "materialize", "-m", "xeroml_pipelines.definitions", "--select", "local/traces"]
            + ["--partition", DAY],
            {**env, "DAGSTER_HOME": str(root / ".dagster_home")},
        ),
    }
    print(f"{'command':42} {'process s':>10} {'first ClickHouse client s':>26}")
    for name, (argv, case_env) in cases.items():
        runs = [_timed(argv, root, case_env) for _ in range(args.repeats)]
        wall = statistics.median(w for w, _ in runs)
        firsts = [f for _, f in runs if f is not None]
        first = f"{statistics.median(firsts):.2f}" if firsts else "-"
        print(f"{name:42} {wall:10.2f} {first:>26}", flush=True)


if __name__ == "__main__":
    main()
