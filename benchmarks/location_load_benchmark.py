"""Code-location load benchmark: N hand-configured exports (one project each, hourly, local
destinations), or N registered exports run by the fleet (2 shards, the default cadences and
tables), the definitions built and resolved as the code server does, in a fresh process.

    python benchmarks/location_load_benchmark.py --exports 10 100 300 1000 --registered 1000 10000 --repeats 3

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


def _fleet(n: int, root: Path) -> tuple[str, str]:
    """A configuration with the fleet, and a registry of `n` exports (its URL)."""
    from xeroml_pipelines.registry.entries import parse_entry
    from xeroml_pipelines.registry.store import Registry

    url = f"sqlite:///{root / f'registry-{n}.sqlite'}"
    registry = Registry(url).create()
    entries = [
        {"name": f"p{i:05d}", "project_id": f"project-{i:05d}", "start_date": "2025-01-01", "cadence": "hourly"}
        | {"destination": {"provider": "local", "path": f"out/{i}"}}
        for i in range(n)
    ]
    registry.put([parse_entry(e, e["name"]) for e in entries])
    registry.close()
    config = "clickhouse: {url: 'chdb://%s', database: bench}\nfleet: {start_date: 2025-01-01, shards: 2}\n" % (root / "db")
    return config, url


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


def _measure(config: Path, registry_url: str | None = None) -> dict:
    env = {**os.environ, **({"XEROML_REGISTRY_URL": registry_url} if registry_url else {})}
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(config)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"loading {config} failed")
    return {**json.loads(out.decode().strip().splitlines()[-1]), "rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=int, nargs="*", default=[10, 100, 300, 1000])
    parser.add_argument("--registered", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=Path)
    parser.add_argument("--register", nargs=2)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    if args.register:
        print(json.dumps(_fleet(int(args.register[0]), Path(args.register[1]))))
        return
    print("| exports | load s (median) | peak RSS MB | assets | schedules | sensors | jobs |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(f"{n:,} configured", Path(tmp) / f"exports-{n}.yaml", _config(n, Path(tmp)), None) for n in args.exports]
        for n in args.registered:
            # registered in a process of its own: children forked from a parent that imported the
            # project would report its memory as their peak
            made = subprocess.run(
                [sys.executable, __file__, "--register", str(n), tmp], capture_output=True, text=True, check=True
            )
            text, url = json.loads(made.stdout)
            cases.append((f"{n:,} registered", Path(tmp) / f"fleet-{n}.yaml", text, url))
        for label, config, text, url in cases:
            config.write_text(text)
            runs = [_measure(config, url) for _ in range(args.repeats)]
            first = runs[0]
            print(
                f"| {label} | {statistics.median(r['seconds'] for r in runs):.1f} | "
                f"{statistics.median(r['rss_mb'] for r in runs):,.0f} | {first['assets']:,} | {first['schedules']:,} | "
                f"{first['sensors']:,} | {first['jobs']:,} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
