"""deploy/'s files that can be checked here: clickhouse-setup.sql against what the exporter reads
(every statement parses as ClickHouse SQL, the grants cover exactly the tables and `system.parts`
columns the code queries, the index statements run on XeroML's schema, on chDB: the engine of a
ClickHouse server), and entrypoint.sh's secret files."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from xeroml_pipelines.clickhouse.changes import MARKS_SQL
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.tables import SOURCES

SETUP = Path(__file__).resolve().parents[1] / "deploy" / "clickhouse-setup.sql"


def _statements() -> list[str]:
    text = "\n".join(line.split("--", 1)[0] for line in SETUP.read_text().splitlines())
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    ch = ClickHouseResource(url=f"chdb://{tmp_path_factory.mktemp('grants') / 'db'}", database="xeroml")
    ch.create_schema()
    yield ch.get_client()
    ch.close()


def test_every_statement_parses(engine) -> None:
    for statement in _statements():
        assert engine.query("SELECT formatQuery({q:String})", parameters={"q": statement}).first_row, statement


def test_the_grants_cover_what_the_exporter_reads(engine) -> None:
    grants = [s for s in _statements() if s.startswith("GRANT SELECT")]
    tables = {m.group(1) for s in grants if (m := re.fullmatch(r"GRANT SELECT ON xeroml\.(\w+) TO xeroml_exporter", s))}
    assert tables == set(SOURCES)  # the export, recount and sessions queries read these and nothing else
    (parts,) = [s for s in grants if "system.parts" in s]
    granted = set(re.search(r"SELECT\((.*?)\)", parts).group(1).replace(" ", "").split(","))  # type: ignore[union-attr]
    columns = {str(row[0]) for row in engine.query("DESCRIBE TABLE system.parts").result_rows}
    used = set(re.findall(r"\w+", MARKS_SQL)) & columns
    assert granted == used, (granted, used)
    # and the granted columns exist under those names
    engine.query(f"SELECT {', '.join(sorted(granted))} FROM system.parts LIMIT 0")
    for table in tables:
        engine.query(f"SELECT * FROM xeroml.{table} LIMIT 0")


def test_the_index_statements_run_on_the_schema(engine) -> None:
    for statement in _statements():
        if statement.startswith("ALTER TABLE"):
            engine.command(statement)
    for table in SOURCES:
        indexes = engine.query(
            "SELECT name FROM system.data_skipping_indices WHERE database = 'xeroml' AND table = {t:String}",
            parameters={"t": table},
        ).result_rows
        assert ("event_ts_minmax",) in [tuple(r) for r in indexes], table


def test_the_entrypoint_turns_secret_files_into_env_vars(tmp_path: Path) -> None:
    """deploy/entrypoint.sh: each file of the secrets folder becomes the env var of its name,
    unless that variable is set already; a file whose name is no variable name is skipped."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "CLICKHOUSE_PASSWORD").write_text("s3cret value")
    (secrets / "ALREADY_SET").write_text("from the file")
    (secrets / "not-a-name").write_text("x")
    env = {"PATH": os.environ["PATH"], "SECRETS_DIR": str(secrets), "ALREADY_SET": "from the environment"}
    entrypoint = SETUP.parent / "entrypoint.sh"
    done = subprocess.run(["sh", str(entrypoint), "env"], env=env, capture_output=True, text=True, timeout=30, check=True)
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["CLICKHOUSE_PASSWORD"] == "s3cret value"
    assert seen["ALREADY_SET"] == "from the environment"
    assert "not-a-name" not in done.stdout
