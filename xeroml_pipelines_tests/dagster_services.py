"""dagster-webserver and dagster-daemon on 127.0.0.1 with the project's workspace.yaml and a
temporary DAGSTER_HOME, driven through the webserver's GraphQL API as the UI drives it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from xeroml_pipelines_tests.emulators import REPO, free_port

BIN = Path(sys.executable).parent
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } ... on PythonError { message } }
}"""


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """A process of the group still runs. A killed member that its (gone) parent never reaped
    is a zombie until the init process does: it runs nothing and holds no port, so it is not
    counted."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def _wait_group(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not group_alive(pgid)


def stop_group(proc: subprocess.Popen, grace: float = 20, signalled: bool = False) -> None:
    """Stop a process started in its own session and everything in its group, by PID: SIGTERM
    (unless `signalled` already), the leader and then its group given `grace` seconds each,
    then SIGKILL for whatever is left, and wait for that to land."""
    if not signalled and proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    if not _wait_group(proc.pid, grace):  # the leader is gone; children of its group may still be stopping
        _signal_group(proc.pid, signal.SIGKILL)
        _wait_group(proc.pid, 10)


def graphql(port: int, query: str, **variables: Any) -> dict:
    """One GraphQL request to the webserver on `port`, as the UI makes it; its data."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


@contextlib.contextmanager
def serving(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A command that serves the UI (`xeroml ui`, `dg dev`) in its own process group, its output
    in `log`; stopped by PID, with everything it started, however the block ends."""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc, grace=30)
    assert not group_alive(proc.pid), f"{argv[0]} left processes running"


def served(proc: subprocess.Popen, port: int, log: Path, query: str, ready: Callable[[dict], bool], **variables: Any) -> dict:
    """The data of `query` once `ready` holds for it, asked every second while the server starts;
    an error with the server's log if it exits or three minutes pass first."""
    timeout = 180
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            data = graphql(port, query, **variables)
            if ready(data):
                return data
        except (OSError, RuntimeError, KeyError, TypeError, ValueError):
            pass  # not listening yet, or the location still loading
        time.sleep(1)
    raise TimeoutError(f"no answer from port {port} in {timeout}s (exit code {proc.poll()}):\n{log.read_text()}")


class DagsterServices:
    def __init__(
        self, home: Path, env: dict[str, str], settings: Path = REPO / "dagster.yaml", workspace: Path = REPO / "workspace.yaml"
    ) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(settings, home / "dagster.yaml")
        self.workspace = workspace
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []

    def start(self) -> DagsterServices:
        """Start both and wait until the webserver has loaded the code location. Whatever fails
        on the way, what was started is stopped before the error is raised."""
        try:
            self._init_storage()
            workspace = str(self.workspace)
            for name, argv in (
                ("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port), "-w", workspace]),
                ("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace]),
            ):
                with open(self.home / f"{name}.log", "ab") as log:
                    # its own process group: the code servers and run workers it spawns stop with it
                    proc = subprocess.Popen(
                        argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                self.procs.append(proc)
            self._wait_until_loaded()
        except BaseException:
            self.stop()
            raise
        return self

    def _init_storage(self) -> None:
        """Create the instance's SQLite storages (runs, events, schedules) before either service
        starts: on a fresh DAGSTER_HOME both would create and stamp them at once, and alembic's
        version table would end up with two heads."""
        done = subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"dagster instance migrate failed:\n{done.stdout}\n{done.stderr}")

    def __enter__(self) -> DagsterServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop each service's whole process group (code servers, run workers) by PID: SIGTERM,
        then SIGKILL for whatever is left after 20 s."""
        for proc in self.procs:  # all told at once, then each waited for
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            stop_group(proc, signalled=True)
        self.procs.clear()

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            (self.home / f"{n}.log").read_text(errors="replace")[-tail:]
            for n in ("webserver", "daemon")
            if (self.home / f"{n}.log").exists()
        )

    def graphql(self, query: str, **variables: Any) -> dict:
        return graphql(self.port, query, **variables)

    def _wait_until_loaded(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        while time.monotonic() < deadline:
            try:
                (entry,) = self.graphql(query)["workspaceOrError"]["locationEntries"]
                if entry["loadStatus"] == "LOADED":
                    if entry["locationOrLoadError"]["__typename"] != "RepositoryLocation":
                        raise RuntimeError(f"code location failed to load: {entry['locationOrLoadError']}")
                    return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"dagster services exited:\n{self.logs()}")
            time.sleep(1)
        raise TimeoutError(f"webserver did not load the code location in {timeout}s:\n{self.logs()}")

    def backfill(self, assets: list[list[str]], partitions: list[str], timeout: float = 300) -> tuple[str, str]:
        """Launch a backfill of `partitions` of `assets` as the UI does; its id and final status."""
        params = {"assetSelection": [{"path": a} for a in assets], "partitionNames": partitions, "fromFailure": False}
        launched = self.graphql(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        backfill_id = launched["backfillId"]

        def done():
            status = self.graphql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
            return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

        return backfill_id, self.wait_for(done, timeout, "the backfill")

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"{what} did not happen in {timeout}s:\n{self.logs()}")


class CodeServer:
    """`dagster code-server start` on 127.0.0.1; runs launched through it are its children, in its
    process group, stopped with it."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port, self.env, self.cwd = free_port(), env, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> CodeServer:
        argv = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(self.port)]
        argv += ["-m", "xeroml_pipelines.definitions"]
        try:
            with open(self.cwd / "code-server.log", "ab") as log:
                self.proc = subprocess.Popen(
                    argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            deadline = time.monotonic() + 120
            health = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(self.port)]
            while subprocess.run(health, env=self.env, capture_output=True, timeout=60).returncode != 0:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the code server did not start:\n{(self.cwd / 'code-server.log').read_text()[-3000:]}")
                time.sleep(1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=30)
            self.proc = None
