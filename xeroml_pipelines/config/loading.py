"""The configuration of a deployment: one YAML file named by `XEROML_CONFIG` (the configuration's
fields, or a component's defs.yaml declaring them), or the embedded default.

Validated before any work starts; an error names the file and the field. Without
`XEROML_CONFIG` the embedded default applies (declared in defs/embedded/defs.yaml): a chDB
database in `./xeroml-demo-db`, one export `local` of project `demo` into `./xeroml-export/`,
loaded into `./xeroml-warehouse.duckdb`.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from xeroml_pipelines.config.base import ConfigError
from xeroml_pipelines.config.exports import XeroMLConfig
from xeroml_pipelines.config.messages import explain
from xeroml_pipelines.destinations.local import DEFAULT_EXPORT_DIR

CONFIG_ENV = "XEROML_CONFIG"
COMPONENT_TYPE = "xeroml_pipelines.component.XeroML"
HOME_ENV = "XEROML_HOME"  # the folder of the embedded defaults (default: the working directory)
DEFAULT_CHDB_DIR = "xeroml-demo-db"
DEMO_START = date(2025, 1, 13)


# What `xeroml demo`/`seed` put in the demo database, kept inside its folder so that deleting the
# database forgets it too: the embedded default's partitions end where the demo data does.
DEMO_RECORD = "xeroml-demo.json"
# updates and late arrivals of the demo land up to three days after its last day
DEMO_TAIL_DAYS = 3


def _root(root: Path | None = None) -> Path:
    return (root or Path(os.environ.get(HOME_ENV) or Path.cwd())).absolute()


def demo_days(root: Path | None = None) -> tuple[date, date] | None:
    """The first and last day of the seeded demo data (its tail of updates included), if seeded
    by `xeroml demo` or `xeroml seed` on the embedded defaults."""
    try:
        record = json.loads((_root(root) / DEFAULT_CHDB_DIR / DEMO_RECORD).read_text())
        return date.fromisoformat(record["first_day"]), date.fromisoformat(record["last_day"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_demo_days(first: date, days: int, root: Path | None = None) -> tuple[date, date]:
    last = first + timedelta(days=days - 1 + DEMO_TAIL_DAYS)
    record = {"first_day": first.isoformat(), "last_day": last.isoformat(), "days": days}
    (_root(root) / DEFAULT_CHDB_DIR / DEMO_RECORD).write_text(json.dumps(record))
    return first, last


# The embedded defaults, declared as the component the repository's `dg` project loads.
EMBEDDED_DEFS = Path(__file__).parent.parent / "defs" / "embedded" / "defs.yaml"


def embedded_scope(root: Path | None = None) -> dict[str, Any]:
    """The template variables of the embedded defaults' `defs.yaml`."""
    seeded = demo_days(root)
    return {"xeroml_home": str(_root(root)), "demo_last_day": seeded[1] if seeded else None}


def _project_root(path: Path) -> Path:
    """The `dg` project a defs.yaml is in (`{{ context.project_root }}`): the nearest folder up
    with a pyproject.toml, else the file's own folder."""
    path = path.absolute()
    return next((p for p in path.parents if (p / "pyproject.toml").is_file()), path.parent)


def config_from_defs_yaml(declared: dict[str, Any], path: Path, scope: dict[str, Any]) -> XeroMLConfig:
    """The configuration of a component's defs.yaml, read outside Dagster's loader (the CLI, the
    embedded defaults), with the templates Dagster would render there."""
    from types import SimpleNamespace

    from dagster import ResolutionContext

    from xeroml_pipelines.config.attributes import config_from_attributes

    scope = {"context": SimpleNamespace(project_root=str(_project_root(path))), **scope}
    render = ResolutionContext.default().with_scope(**scope).resolve_value
    return config_from_attributes(declared.get("attributes") or {}, render, str(path))


def default_config(root: Path | None = None) -> XeroMLConfig:
    declared = read_yaml(EMBEDDED_DEFS.read_text(), str(EMBEDDED_DEFS))
    return config_from_defs_yaml(declared, EMBEDDED_DEFS, embedded_scope(root))


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: `2025-13-01` stays a string, and the date check (with
    its message naming the field) is the configuration's, not a crash inside the YAML parser.
    PyYAML's own parser, not libyaml's (0.4 s more for a thousand exports): libyaml's messages
    do not name a tab nor say "block end", which the plain-words errors below rely on."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# PyYAML's problems, in plain words (its own text names "<unicode string>", not the file)
_YAML_PROBLEMS = (
    ("expected <block end>", "this line's indentation does not line up with the lines above it"),
    ("mapping values are not allowed", "a ':' where none is allowed: check the indentation, or quote a value holding ': '"),
    ("found character '\\t'", "a tab: indent with spaces"),
    ("expected ',' or ']'", "a [ list that is not closed"),
    ("expected ',' or '}'", "a { mapping that is not closed"),
    ("quoted scalar", "a quote that is not closed"),
    ("could not find expected ':'", "a key without its ':'"),
)


def _yaml_error(e: yaml.YAMLError, source: str) -> str:
    """A YAML syntax error as one line: the file, line and column, and what is wrong there."""
    mark = getattr(e, "problem_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
    text = " ".join(filter(None, [getattr(e, "context", None), getattr(e, "problem", None)])) or type(e).__name__
    problem = next((plain for needle, plain in _YAML_PROBLEMS if needle in text), text)
    return f"invalid configuration in {where}: not valid YAML: {problem}"


def read_yaml(text: str, source: str) -> Any:
    """YAML as the configuration reads it: dates stay text, a syntax error is one plain line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(e, source)) from None


# the keys of a component's defs.yaml (`dg check yaml` allows no others)
_DEFS_YAML_KEYS = {"type", "attributes", "requirements", "template_vars_module", "post_processing"}


def parse_config(text: str, source: str = "<string>") -> XeroMLConfig:
    raw = read_yaml(text, source)
    if isinstance(raw, dict) and "type" in raw and set(raw) <= _DEFS_YAML_KEYS:
        if raw["type"] != COMPONENT_TYPE:
            raise ConfigError(f"invalid configuration in {source}: type: {raw['type']!r} is not {COMPONENT_TYPE}")
        return config_from_defs_yaml(raw, Path(source), {})
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration in {source}: expected a mapping with 'clickhouse' and 'exports'")
    try:
        return XeroMLConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(explain(e, XeroMLConfig, source, raw)) from None


def load_config() -> XeroMLConfig:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return default_config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{CONFIG_ENV}={path} does not name a readable file; "
            f"unset {CONFIG_ENV} to run on the embedded defaults (the demo database and ./{DEFAULT_EXPORT_DIR})"
        )
    return parse_config(p.read_text(), str(p))
