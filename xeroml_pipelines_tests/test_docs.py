"""README.md and docs/: README's two set-up commands are the ones that are run, README stays a
five-minute read, every page is linked and every link lands, and every command, configuration
and query they show is checked: `xeroml` and `dg` commands are parsed by the commands' own
parsers, configurations validated as the code location validates them, queries and other
commands run verbatim by the test that names them."""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from xeroml_pipelines.cli import build_parser
from xeroml_pipelines.config import parse_config
from xeroml_pipelines.config.loading import read_yaml
from xeroml_pipelines.registry.entries import parse_entry

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
TESTS = "\n".join(p.read_text() for p in sorted((REPO / "xeroml_pipelines_tests").glob("test_*.py")) if p.name != "test_docs.py")
# shown, not runnable here: no Athena (the page says so)
NOT_RUNNABLE = ("CREATE EXTERNAL TABLE xeroml_observations",)
MINIMAL = {"clickhouse": {"url": "https://ch.example:8443"}}
EXPORT = {"name": "docs", "project_id": "docs", "start_date": "2025-01-01", "destination": {"provider": "local"}}


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    (command,) = re.findall(r"^TEST_COMMAND='(.+)'$", ci, flags=re.M)
    assert command in README.read_text()


def test_readme_main_command_runs_the_demo() -> None:
    assert "pip install -e . && xeroml demo" in README.read_text()


def test_readme_is_a_five_minute_read_linking_every_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    assert linked == {f"docs/{p.name}" for p in PAGES}, "every docs/ page is linked from README, and exists"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_link_lands(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)}
            assert anchor in headings, f"{page.name}: no heading #{anchor} in {file.name}"


def _anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _blocks() -> list[tuple[str, str, str]]:
    """(where, language, text) of every fenced block."""
    found = []
    for page in [README, *PAGES]:
        text = page.read_text()
        for m in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", text, flags=re.M | re.S):
            line = text[: m.start()].count("\n") + 1
            found.append((f"{page.name}:{line}", m.group(2), textwrap.dedent(m.group(3))))
    return found


BLOCKS = _blocks()


def _commands(line: str) -> list[list[str]]:
    """A shell line's simple commands, without comments and leading VAR=value."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "|"):
            commands.append([])
        elif commands[-1] or not re.match(r"^[A-Z_][A-Z0-9_]*=", token):
            commands[-1].append(token)
    return [c for c in commands if c]


def _check_dg(args: list[str], where: str) -> None:
    from dagster_dg_cli.cli import cli as dg

    group: click.Command = dg
    for word in [a for a in args if not a.startswith("-")][:2]:
        if not isinstance(group, click.Group):
            break
        found = group.get_command(click.Context(group), word)
        assert found is not None, f"{where}: `dg {' '.join(args)}`: no command {word!r}"
        group = found


def _check_shell(where: str, text: str) -> None:
    if text.strip().startswith("python3 -m venv") and text.strip() in README.read_text():
        return  # README's set-up commands: the two tests above
    for line in text.splitlines():
        for command in _commands(line):
            if command[0] == "xeroml":
                try:
                    build_parser().parse_args(command[1:])
                except SystemExit as e:
                    raise AssertionError(f"{where}: `{' '.join(command)}` is not a valid xeroml command") from e
            elif command[0] == "dg":
                _check_dg(command[1:], where)
            else:
                assert line.strip()[:24] in TESTS, f"{where}: `{line.strip()}` is run by no test"


def _check_yaml(where: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in re.findall(r"\{\{\s*env\.(\w+)\s*\}\}", text):
        monkeypatch.setenv(name, "docs-example")
    raw: Any = read_yaml(text, where)
    if isinstance(raw, list):  # registry entries
        for i, entry in enumerate(raw):
            parse_entry(entry, f"{where} entry {i}")
        return
    assert isinstance(raw, dict), f"{where}: a YAML block the docs test cannot check"
    if "type" in raw or "clickhouse" in raw:
        parse_config(text, where)
    elif set(raw) <= {"fleet", "alerts"}:
        exports = [] if "fleet" in raw else [EXPORT]
        parse_config(yaml.safe_dump({**MINIMAL, "exports": exports, **raw}), where)
    elif set(raw) <= {"destination", "warehouse"}:
        destination = raw.get("destination") or {"provider": "local"}
        parse_config(yaml.safe_dump({**MINIMAL, "exports": [{**EXPORT, **raw, "destination": destination}]}), where)
    else:
        raise AssertionError(f"{where}: a YAML block the docs test cannot check: {sorted(raw)}")


@pytest.mark.parametrize(("where", "language", "text"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_every_block_shown_is_checked(where: str, language: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if language in ("bash", "sh"):
        _check_shell(where, text)
    elif language == "yaml":
        _check_yaml(where, text, monkeypatch)
    elif language == "json":
        json.loads(text)
    elif language == "sql":
        first = text.strip().splitlines()[0].strip()
        assert first.startswith(NOT_RUNNABLE) or first in TESTS, f"{where}: the query `{first}` is run by no test"
    else:  # a listing or an output, shown as text
        assert language in ("", "text"), f"{where}: a ```{language} block the docs test does not know"
