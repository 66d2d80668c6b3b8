"""README's two set-up commands are the ones that are run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    (command,) = re.findall(r"^TEST_COMMAND='(.+)'$", ci, flags=re.M)
    assert command in (REPO / "README.md").read_text()


def test_readme_main_command_runs_the_demo() -> None:
    assert "pip install -e . && xeroml demo" in (REPO / "README.md").read_text()
