"""The exports as a Dagster component: `dg check yaml`/`dg check defs` on the repository's own
defs.yaml and on one `dg scaffold defs` creates in a new project, errors that name the field,
secrets in Dagster's `{{ env.NAME }}` form kept as names, and `dg dev` serving what `xeroml ui`
serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xeroml_pipelines.component import XeroML
from xeroml_pipelines.config import ConfigError, default_config, parse_config
from xeroml_pipelines.config.attributes import config_from_attributes
from xeroml_pipelines_tests.dagster_services import served, serving
from xeroml_pipelines_tests.emulators import free_port

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")
TYPE = "xeroml_pipelines.component.XeroML"

PROJECT_TOML = """\
[project]
name = "analytics"
version = "0.1.0"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "analytics"
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def dg(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "XEROML_CONFIG"}
    env |= {"XEROML_HOME": str(home), "DAGSTER_HOME": str(home), "DG_TELEMETRY_DISABLED": "1", "NO_COLOR": "1"}
    return subprocess.run([str(DG), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def asset_keys(listing: subprocess.CompletedProcess[str]) -> set[str]:
    """The exports' and loads' asset keys (not the ClickHouse tables they read)."""
    assert listing.returncode == 0, listing.stderr
    return {a["asset_key"] for a in json.loads(listing.stdout)["assets"] if not a["asset_key"].startswith("clickhouse/")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A new `dg` project of a user of the package (the layout `dg scaffold project` writes)."""
    root = tmp_path / "analytics"
    (root / "analytics" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PROJECT_TOML)
    (root / "analytics" / "__init__.py").touch()
    (root / "analytics" / "defs" / "__init__.py").touch()
    (root / "analytics" / "definitions.py").write_text(DEFINITIONS)
    return root


def render(value: str) -> str:
    raise AssertionError(f"no template to render: {value}")


def attributes(**clickhouse: object) -> dict[str, object]:
    export = {"name": "nightly", "project_id": "p1", "start_date": "2025-01-13", "destination": {"provider": "local"}}
    return {"clickhouse": {"url": "https://ch.example:8443", **clickhouse}, "exports": [export]}


def test_a_secret_in_dagsters_template_form_is_kept_as_the_name_of_its_variable() -> None:
    config = config_from_attributes(attributes(password="{{ env.CH_PASSWORD }}"), render, "defs.yaml")
    assert config.clickhouse.password_env == "CH_PASSWORD"
    with pytest.raises(ConfigError, match=r"defs.yaml: clickhouse.password: a secret is never written in the configuration"):
        config_from_attributes(attributes(password="hunter2"), render, "defs.yaml")


def test_a_variable_is_taken_as_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XEROML_TEST_PROJECT", "12345")  # Dagster's own rendering would make it a number
    raw = attributes()
    raw["exports"][0]["project_id"] = "{{ env.XEROML_TEST_PROJECT }}"  # type: ignore[index]
    assert config_from_attributes(raw, render, "defs.yaml").exports[0].project_id == "12345"
    raw["exports"][0]["project_id"] = "{{ env.XEROML_TEST_UNSET }}"  # type: ignore[index]
    with pytest.raises(ConfigError, match="exports.0.project_id: the environment variable XEROML_TEST_UNSET is not set"):
        config_from_attributes(raw, render, "defs.yaml")


def test_dg_checks_the_repositorys_own_defs_yaml_which_is_the_embedded_default(tmp_path: Path) -> None:
    for command in (("check", "yaml"), ("check", "defs")):
        result = dg(*command, cwd=REPO, home=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    keys = asset_keys(dg("list", "defs", "--json", cwd=REPO, home=tmp_path))
    (export,) = default_config(tmp_path).exports
    assert {f"{export.name}/{t}" for t in export.tables} | {f"{export.name}/warehouse/{t}" for t in export.tables} == keys


def test_dg_scaffolds_a_component_that_checks_and_lists_its_assets(project: Path) -> None:
    made = dg("scaffold", "defs", TYPE, "nightly", cwd=project, home=project)
    assert made.returncode == 0, made.stdout + made.stderr
    defs_yaml = project / "analytics" / "defs" / "nightly" / "defs.yaml"
    assert f"type: {TYPE}" in defs_yaml.read_text()
    for command in (("check", "yaml"), ("check", "defs")):
        result = dg(*command, cwd=project, home=project)
        assert result.returncode == 0, result.stdout + result.stderr
    keys = asset_keys(dg("list", "defs", "--json", cwd=project, home=project))
    tables = ("traces", "observations", "scores", "sessions")
    assert {f"nightly/{t}" for t in tables} | {f"nightly/warehouse/{t}" for t in tables} == keys


def test_dg_names_the_field_and_line_of_a_mistake(project: Path) -> None:
    dg("scaffold", "defs", TYPE, "nightly", cwd=project, home=project)
    defs_yaml = project / "analytics" / "defs" / "nightly" / "defs.yaml"
    text = defs_yaml.read_text()
    defs_yaml.write_text(text.replace("project_id: demo", "project_idd: demo").replace("type: duckdb", "type: duckd"))
    result = dg("check", "yaml", cwd=project, home=project)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    line = next(i for i, x in enumerate(defs_yaml.read_text().splitlines(), 1) if "project_idd" in x)
    assert (
        f"defs.yaml:{line} - " in out and "attributes.exports.0.project_idd" in out and "'project_idd' was unexpected" in out
    ), out
    assert "attributes.exports.0.warehouse.type 'duckd' is not one of" in out, out
    # what the schema cannot say, the configuration's own checks do when the component loads
    defs_yaml.write_text(text.replace('start_date: "', 'start_date: "2999'))
    result = dg("check", "defs", cwd=project, home=project)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"invalid configuration in {defs_yaml}:" in out and "exports.0.start_date: " in out, out


ASSETS = "query { assetNodes { assetKey { path } } workspaceOrError { ... on Workspace { locationEntries { name } } } }"


def test_dg_dev_serves_the_code_location_xeroml_ui_serves(tmp_path: Path) -> None:
    expected = asset_keys(dg("list", "defs", "--json", cwd=REPO, home=tmp_path))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "XEROML_CONFIG"}
    env |= {"XEROML_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path), "DG_TELEMETRY_DISABLED": "1"}
    argv = [str(DG), "dev", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "dg-dev.log"
    with serving(argv, REPO, env, log) as proc:
        data = served(proc, port, log, ASSETS, lambda d: bool(d["assetNodes"]))
        served_keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {key for key in served_keys if not key.startswith("clickhouse/")} == expected
        # the location workspace.yaml names, which `xeroml ui` opens
        assert [e["name"] for e in data["workspaceOrError"]["locationEntries"]] == ["xeroml_pipelines"]


def test_the_scaffolded_example_exports_and_the_cli_reads_it(project: Path) -> None:
    """`XEROML_CONFIG` may name a component's defs.yaml: the CLI seeds and exports what the
    scaffolded example declares, into the project's folders."""
    dg("scaffold", "defs", TYPE, "nightly", cwd=project, home=project)
    defs_yaml = project / "analytics" / "defs" / "nightly" / "defs.yaml"
    start = parse_config(defs_yaml.read_text(), str(defs_yaml)).exports[0].start_date.isoformat()

    def xeroml(*args: str) -> subprocess.CompletedProcess[str]:
        exe = str(Path(sys.executable).with_name("xeroml"))
        env = {**os.environ, "XEROML_CONFIG": str(defs_yaml), "XEROML_HOME": str(project)}
        return subprocess.run([exe, *args], env=env, cwd=project, capture_output=True, text=True, timeout=300)

    seeded = xeroml("seed", "--start", start, "--days", "1", "--traces-per-day", "50")
    assert seeded.returncode == 0, seeded.stderr
    exported = xeroml("export", start)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert f"nightly {start}: ok traces=" in exported.stdout, exported.stdout
    assert (project / "xeroml-export" / "traces" / f"{start}.jsonl").is_file()  # {{ context.project_root }}
    with pytest.raises(ConfigError, match="type: 'other.Component' is not xeroml_pipelines.component.XeroML"):
        parse_config(defs_yaml.read_text().replace(TYPE, "other.Component"), str(defs_yaml))


def test_dagsters_own_loader_reads_the_embedded_defaults_as_the_code_location_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository's defs folder through `dg.load_from_defs_folder` (its template variables
    from the component) declares what `default_config` reads from the same file."""
    import dagster

    monkeypatch.setenv("XEROML_HOME", str(tmp_path))
    monkeypatch.delenv("XEROML_CONFIG", raising=False)
    loaded = dagster.load_from_defs_folder(path_within_project=REPO)
    keys = {key.to_user_string() for key in loaded.resolve_asset_graph().get_all_asset_keys()} - {
        f"clickhouse/{t}" for t in ("traces", "observations", "scores")
    }
    (export,) = default_config(tmp_path).exports
    assert keys == {f"{export.name}/{t}" for t in export.tables} | {f"{export.name}/warehouse/{t}" for t in export.tables}
    assert loaded.component_tree is not None
    (component,) = loaded.component_tree.get_all_components(of_type=XeroML)
    assert component.config == default_config(tmp_path)
