"""History benchmark: a scheduled run's time with 10 and with 1,000 earlier partitions in its
destination (local folder, and S3 on moto), whole processes, medians.

    python benchmarks/history_benchmark.py --repeats 3

One day of demo data is exported once; its four files and manifests are copied as the N days
before it (dates rewritten), so the destination holds N earlier partitions per table. Then, in
a fresh process each time:
- `run`: the export job of the newest day, as the schedule launches it (the export and the
  checks a run includes: files_match_manifests and recount_matches_manifest on its partition);
- `verify`: the whole-destination verification (the weekly `<export>_verify` job's work, `xeroml
  verify`), which reads every manifest: what every run paid before the checks became per-run.
Ratios are 1,000 / 10 within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
DAY = date(2025, 1, 13)
TABLES = ("traces", "observations", "scores", "sessions")
RUN = """
import sys, time
from dagster import DagsterInstance
from xeroml_pipelines.config import load_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.defs.export.schedules import export_job_name
config = load_config()
defs = build_definitions(config)
started = time.perf_counter()
job = defs.get_job_def(export_job_name(config.exports[0]))
result = job.execute_in_process(partition_key=sys.argv[1], instance=DagsterInstance.ephemeral())
assert result.success
print(f"RUN {time.perf_counter() - started:.3f}")
"""


def _config(root: Path, destination: dict, start: date) -> Path:
    path = root / f"xeroml-{destination['provider']}.yaml"
    export = {"name": "bench", "project_id": "demo", "start_date": start.isoformat(), "retries": 0, "recheck_days": 0}
    export["destination"] = destination
    path.write_text(yaml.safe_dump({"clickhouse": {"url": f"chdb://{root / 'db'}"}, "exports": [export]}))
    return path


def _history(template: Path, days: int) -> dict[str, bytes]:
    """The template partition's objects and manifests copied as the `days` days before it."""
    objects = {}
    for table in TABLES:
        data = (template / table / f"{DAY}.jsonl").read_bytes()
        manifest = (template / "_manifests" / table / f"{DAY}.json").read_text()
        for back in range(1, days + 1):
            day = DAY - timedelta(days=back)
            objects[f"{table}/{day}.jsonl"] = data
            text = manifest.replace(str(DAY + timedelta(days=1)), str(day + timedelta(days=1))).replace(str(DAY), str(day))
            objects[f"_manifests/{table}/{day}.json"] = text.encode()
    return objects


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float | None]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    inner = [float(x.split()[1]) for x in done.stdout.splitlines() if x.startswith("RUN ")]
    return wall, (inner[0] if inner else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--histories", type=int, nargs="+", default=[10, 1000])
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from xeroml_pipelines_tests import emulators

    root = Path(tempfile.mkdtemp(prefix="xeroml-history-"))
    start = DAY - timedelta(days=max(args.histories))
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME")}
    env.update({"BENCH_KEY_ID": "testing-key-id", "BENCH_SECRET": "testing-secret"})
    template = root / "template"
    seed_config = _config(root, {"provider": "local", "path": str(template)}, start)
    cli = {**env, "XEROML_CONFIG": str(seed_config)}
    subprocess.run([str(BIN / "xeroml"), "seed", "--days", "1", "--traces-per-day", "500"], env=cli, check=True, cwd=root)
    subprocess.run([str(BIN / "xeroml"), "export", str(DAY)], env=cli, check=True, cwd=root, capture_output=True)

    moto = emulators.moto(root).start()
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
        print(f"{'destination':12} {'earlier partitions':>18} {'run s':>7} {'process s':>10} {'verify s':>9}")
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for provider in ("local", "s3"):
            for days in args.histories:
                objects = _history(template, days)
                if provider == "local":
                    folder = root / f"local-{days}"
                    for key, data in objects.items():
                        (folder / key).parent.mkdir(parents=True, exist_ok=True)
                        (folder / key).write_bytes(data)
                    destination = {"provider": "local", "path": str(folder)}
                else:
                    bucket = f"history-{days}"
                    s3.create_bucket(Bucket=bucket)
                    for key, data in objects.items():
                        s3.put_object(Bucket=bucket, Key=key, Body=data)
                    destination = {"provider": "s3", "bucket": bucket, "region": "us-east-1", "endpoint_url": moto.url}
                    destination |= {"access_key_id_env": "BENCH_KEY_ID", "secret_access_key_env": "BENCH_SECRET"}
                config = {**env, "XEROML_CONFIG": str(_config(root, destination, start))}
                runs = [_timed([sys.executable, "-c", RUN, str(DAY)], config) for _ in range(args.repeats)]
                verify = [_timed([str(BIN / "xeroml"), "verify"], config)[0] for _ in range(args.repeats)]
                run_s = statistics.median(r for _, r in runs if r is not None)
                wall = statistics.median(w for w, _ in runs)
                results[provider, days] = (run_s, wall)
                print(f"{provider:12} {days:>18,} {run_s:7.2f} {wall:10.2f} {statistics.median(verify):9.2f}", flush=True)
        low, high = min(args.histories), max(args.histories)
        for provider in ("local", "s3"):
            ratio = results[provider, high][0] / results[provider, low][0]
            print(f"{provider}: run with {high:,} earlier partitions / with {low:,}: {ratio:.2f}x")
        print(json.dumps({f"{p}-{d}": v for (p, d), v in results.items()}))
    finally:
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
