"""The Dagster instance the CLI records its runs in: the one `xeroml ui` shows.

`DAGSTER_HOME` when it is set; otherwise `./.dagster_home`, created with the project's
`dagster.yaml`. So what `xeroml demo` or `xeroml export` ran appears in the UI, with its
metadata and check results, and the load sensor knows what the CLI already loaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from xeroml_pipelines.processes import alive

if TYPE_CHECKING:
    from dagster import DagsterInstance

HOME_DIR = ".dagster_home"
# Which process runs a CLI run: "host:pid". A run whose process is gone is failed by the next CLI
# run (nothing else would: it ran in-process, no run launcher or monitor owns it).
PROCESS_TAG = "xeroml/process"


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
    from dagster.version import __version__

    home = project_home(project)
    instance = DagsterInstance.from_config(str(home))
    # the storage exists and is current before a webserver and a daemon race to create it (once
    # per Dagster version: migrating costs every command a third of a second); its progress bars
    # (reindexing the runs of an older version) are not the user's business
    stamp = home / ".storage-version"
    if not stamp.exists() or stamp.read_text() != __version__:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            instance.upgrade(print_fn=lambda *_: None)
        stamp.write_text(__version__)
    return instance


def process_tag() -> dict[str, str]:
    """The tag that names this process on its run."""
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the unfinished CLI runs of this host whose process is gone (killed, machine
    restarted) and free the pool slots they held: otherwise the next run would wait for those
    slots forever. Returns their run ids."""
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED]
    host = socket.gethostname()
    orphaned = []
    for run in instance.get_runs(filters=RunsFilter(statuses=unfinished)):
        owner_host, _, pid = run.tags.get(PROCESS_TAG, "").rpartition(":")
        if owner_host != host or not pid.isdigit() or alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the xeroml process that ran it (pid {pid} on {host}) is gone")
        # Not public API: only the daemon's run monitoring frees a dead run's pool slots, and the
        # CLI runs without a daemon (report_run_failed leaves them held).
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        orphaned.append(run.run_id)
    return orphaned
