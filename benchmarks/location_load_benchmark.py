"""Code-location load benchmark: N hand-configured exports (one project each, hourly, local
destinations), the definitions built and resolved as the code server does, in a fresh process.

    python benchmarks/location_load_benchmark.py --exports 10 100 300 1000 --repeats 3

Per N: the wall seconds of loading (configuration read, definitions built, the repository
resolved: every asset's resources, jobs, schedules and sensors), the process's peak RSS, and how
many Dagster objects it holds. Medians of `--repeats` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _config(n: int, root: Path) -> str:
    lines = ["clickhouse: {url: 'chdb://%s', database: bench}" % (root / "db"), "exports:"]
    for i in range(n):
        lines += [
            f"  - name: p{i:05d}",
            f"    project_id: project-{i:05d}",
            "    start_date: 2025-01-01",
            "    cadence: hourly",
            f"    destination: {{provider: local, path: '{root / 'out' / str(i)}'}}",
        ]
    return "\n".join(lines) + "\n"


def _child(config: Path) -> None:
    os.environ["XEROML_CONFIG"] = str(config)
    started = time.perf_counter()
    import dagster as dg

    from xeroml_pipelines.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()
    seconds = time.perf_counter() - started
    counts = {
        "assets": len(repository.assets_defs_by_key),
        "schedules": len(repository.schedule_defs),
        "sensors": len(repository.sensor_defs),
        "jobs": len(repository.get_all_jobs()),
    }
    print(json.dumps({"seconds": seconds, **counts}))


def _measure(config: Path) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(config)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"loading {config} failed")
    return {**json.loads(out.decode().strip().splitlines()[-1]), "rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    print("| exports | load s (median) | peak RSS MB | assets | schedules | sensors | jobs |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.exports:
            config = Path(tmp) / f"exports-{n}.yaml"
            config.write_text(_config(n, Path(tmp)))
            runs = [_measure(config) for _ in range(args.repeats)]
            first = runs[0]
            print(
                f"| {n:,} | {statistics.median(r['seconds'] for r in runs):.1f} | "
                f"{statistics.median(r['rss_mb'] for r in runs):,.0f} | {first['assets']:,} | {first['schedules']:,} | "
                f"{first['sensors']:,} | {first['jobs']:,} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
