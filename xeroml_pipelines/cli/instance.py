"""The Dagster instance the CLI records its runs in: the one `xeroml ui` shows.

`DAGSTER_HOME` when it is set; otherwise `./.dagster_home`, created with the project's
`dagster.yaml`. So what `xeroml demo` or `xeroml export` ran appears in the UI, with its
metadata and check results, and the load sensor knows what the CLI already loaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

HOME_DIR = ".dagster_home"


def project_home(project: Path) -> Path:
    """The instance folder: `DAGSTER_HOME`, or `<project>/.dagster_home` (created on first use)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = (project / HOME_DIR).absolute()
    home.mkdir(exist_ok=True)
    settings = project / "dagster.yaml"
    if settings.is_file() and not (home / "dagster.yaml").exists():
        shutil.copyfile(settings, home / "dagster.yaml")
    return home


def project_instance(project: Path) -> DagsterInstance:
    from dagster import DagsterInstance

    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    instance = DagsterInstance.from_config(str(project_home(project)))
    # the storage exists and is current before a webserver and a daemon race to create it; its
    # progress bars (reindexing the runs of an older version) are not the user's business
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        instance.upgrade(print_fn=lambda *_: None)
    return instance
