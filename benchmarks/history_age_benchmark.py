"""History-age benchmark: exporting the oldest against the newest day of a long history costs
the same (the latest-version lookup is bounded by the window's own ids), whole processes.

    python benchmarks/history_age_benchmark.py --days 365 --traces-per-day 200 --repeats 3

Generates `--days` days of small demo rows (text_scale 1) in a temporary folder, then exports
one day of all four tables, the oldest and the newest, each in a fresh process, alternating,
and prints medians of time and peak RSS with their ratios (goal: time within 10%, memory 5%).
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
from datetime import date, timedelta
from pathlib import Path

START = date(2024, 1, 1)
CHILD = """
import json, sys, time
from datetime import UTC, date, datetime, timedelta
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.clickhouse.source import TableQuery
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.export import engine
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.windows import Window
db, out, day = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
ch = ClickHouseResource(url=f"chdb://{db}", database="bench")
ch.get_client()
start = datetime.combine(day, datetime.min.time(), UTC)
window = Window(day.isoformat(), start, start + timedelta(days=1))
t = time.perf_counter()
rows = 0
for table in ("traces", "observations", "scores", "sessions"):
    stream = ExportStream("bench", "demo", table, "incremental", (window,), TableQuery(ch, table, "incremental", ("demo",)))
    (m,) = engine.export(LocalFolder(path=out), Layout(prefix=""), stream, None)
    rows += m.rows
print(json.dumps({"seconds": time.perf_counter() - t, "rows": rows}))
"""


def _run(db: Path, out: Path, day: date) -> tuple[float, float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(out), day.isoformat()], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    report = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"export of {day} failed")
    result = json.loads(report.decode().strip().splitlines()[-1])
    return result["seconds"], usage.ru_maxrss / 1024, result["rows"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--traces-per-day", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xeroml-age-"))
    try:
        db = root / "db"
        code = (
            "from datetime import date\n"
            "from xeroml_pipelines.clickhouse.resource import ClickHouseResource\n"
            "from xeroml_pipelines.demo.generate import DemoSpec, generate\n"
            f"ch = ClickHouseResource(url='chdb://{db}', database='bench')\n"
            f"generate(ch, DemoSpec(start=date.fromisoformat('{START}'), days={args.days}, "
            f"traces_per_day={args.traces_per_day}, projects=('demo', 'acme')))\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
        # the newest day whose versions all exist: a few days before the generated end
        days = {"oldest": START, "newest": START + timedelta(days=args.days - 3)}
        runs: dict[str, list[tuple[float, float, int]]] = {k: [] for k in days}
        for _ in range(args.repeats):
            for name, day in days.items():
                runs[name].append(_run(db, root / "out", day))
        med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[0][2]) for k, v in runs.items()}
        print(f"{args.days} days of {args.traces_per_day} traces a day per project; medians of {args.repeats}")
        print(f"{'day':8} {'date':11} {'rows':>8} {'export s':>9} {'peak RSS MB':>12}")
        for name, day in days.items():
            seconds, rss, rows = med[name]
            print(f"{name:8} {day.isoformat():11} {rows:8,} {seconds:9.2f} {rss:12.0f}")
        print(
            f"oldest / newest: time {med['oldest'][0] / med['newest'][0]:.2f}x, "
            f"peak RSS {med['oldest'][1] / med['newest'][1]:.2f}x"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
