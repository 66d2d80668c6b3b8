"""The habits the project holds itself to, enforced: lint, format, types, the layers contract and
small modules. Each tool runs on the whole tree with the settings in pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from xeroml_pipelines_tests.emulators import REPO

BIN = Path(sys.executable).parent
MAX_MODULE_LINES = 300

TOOLS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],  # the package, as [tool.mypy] names it
    "import contracts": ["lint-imports"],  # [tool.importlinter]: layers one way, no cycles
}


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_passes(tool: str) -> None:
    program, *args = TOOLS[tool]
    done = subprocess.run([str(BIN / program), *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{tool} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def test_modules_are_small() -> None:
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in (REPO / "xeroml_pipelines").rglob("*.py")}
    assert sizes, "no modules found"
    too_long = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def _private_dagster(tree: ast.AST) -> list[str]:
    """`dagster._x` (or `dagster_aws._x`, ...) imported or reached as an attribute."""

    def private(module: str) -> bool:
        top, _, rest = module.partition(".")
        return (top == "dagster" or top.startswith("dagster_")) and rest.startswith("_")

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if private(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and private(node.module):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and private(f"{node.value.id}.{node.attr}"):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_package_uses_dagsters_public_api_only() -> None:
    """A private Dagster module is a break waiting for the next upgrade."""
    assert _private_dagster(ast.parse("from dagster._core.storage.tags import X\nimport dagster._utils\ndagster._core.x"))
    assert not _private_dagster(ast.parse("from dagster import asset\nimport dagster_aws.s3\ndagster.AssetKey"))
    found = {
        p.relative_to(REPO).as_posix(): hits
        for p in (REPO / "xeroml_pipelines").rglob("*.py")
        if (hits := _private_dagster(ast.parse(p.read_text())))
    }
    assert not found, found
