"""deploy/'s files that can be checked here: clickhouse-setup.sql against what the exporter reads
(every statement parses as ClickHouse SQL, the grants cover exactly the tables and `system.parts`
columns the code queries, the index statements run on XeroML's schema, on the test ClickHouse
server: chDB, the engine of a ClickHouse server, behind its HTTP interface), and entrypoint.sh's
secret files."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from xeroml_pipelines.clickhouse.changes import MARKS_SQL
from xeroml_pipelines.sql.source_tables import SOURCES
from xeroml_pipelines_tests.support import server_database

SETUP = Path(__file__).resolve().parents[1] / "deploy" / "clickhouse-setup.sql"


def _statements() -> list[str]:
    text = "\n".join(line.split("--", 1)[0] for line in SETUP.read_text().splitlines())
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


@pytest.fixture
def engine(clickhouse_server):
    """XeroML's schema on the test ClickHouse server (a database of its own), and its client; the
    statements' `xeroml.` names this database through `_on`."""
    ch = server_database(clickhouse_server, f"grants_{uuid.uuid4().hex[:8]}")
    ch.create_schema()
    yield ch.get_client(), ch.database
    ch.close()


def _on(statement: str, database: str) -> str:
    return statement.replace("xeroml.", f"{database}.")


def test_every_statement_parses(engine) -> None:
    client, _ = engine
    for statement in _statements():
        assert client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).first_row, statement


def test_the_grants_cover_what_the_exporter_reads(engine) -> None:
    client, database = engine
    grants = [s for s in _statements() if s.startswith("GRANT SELECT")]
    tables = {m.group(1) for s in grants if (m := re.fullmatch(r"GRANT SELECT ON xeroml\.(\w+) TO xeroml_exporter", s))}
    assert tables == set(SOURCES)  # the export, recount and sessions queries read these and nothing else
    (parts,) = [s for s in grants if "system.parts" in s]
    granted = set(re.search(r"SELECT\((.*?)\)", parts).group(1).replace(" ", "").split(","))  # type: ignore[union-attr]
    columns = {str(row[0]) for row in client.query("DESCRIBE TABLE system.parts").result_rows}
    used = set(re.findall(r"\w+", MARKS_SQL)) & columns
    assert granted == used, (granted, used)
    # and the granted columns exist under those names
    client.query(f"SELECT count() FROM (SELECT {', '.join(sorted(granted))} FROM system.parts)")
    for table in tables:
        client.query(_on(f"SELECT count() FROM xeroml.{table}", database))


def test_the_index_statements_run_on_the_schema(engine) -> None:
    client, database = engine
    for statement in _statements():
        if statement.startswith("ALTER TABLE"):
            client.command(_on(statement, database))
    for table in SOURCES:
        indexes = client.query(
            "SELECT name FROM system.data_skipping_indices WHERE database = {d:String} AND table = {t:String}",
            parameters={"d": database, "t": table},
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


def test_the_helm_values_run_this_code_location_with_a_pod_per_run() -> None:
    """The Kubernetes values are untested against a cluster; what they name is checked here."""
    import importlib

    import yaml

    values = yaml.safe_load((SETUP.parent / "kubernetes" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    flag, module = deployment["codeServerArgs"]
    assert flag == "-m" and importlib.import_module(module).defs is not None
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    # the secrets reach the code server and each run's pod, from a Kubernetes secret, never as values
    assert {s["name"] for s in deployment["envSecrets"]} == {s["name"] for s in launcher["envSecrets"]} == {"xeroml-secrets"}
    assert [e["name"] for e in deployment["env"]] == ["XEROML_CONFIG"]
