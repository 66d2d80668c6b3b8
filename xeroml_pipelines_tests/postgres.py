"""A real PostgreSQL server for the deployment test: the machine's own binaries (Debian's
`postgresql` package; `.ci/run` installs it), a throwaway cluster on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from xeroml_pipelines_tests.emulators import free_port


def bindir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    exe = shutil.which("postgres")
    return Path(exe).parent if exe else None


def required_bindir() -> Path:
    """PostgreSQL's server binaries: skips the test where they are missing, fails it in CI."""
    import pytest

    found = bindir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's server binaries are not installed; .ci/run installs Debian's postgresql")
        pytest.skip("needs PostgreSQL's server binaries (apt-get install postgresql)")
    return found


class Postgres:
    """`start` creates a cluster with trust auth for local connections and a database `dagster`;
    `stop` shuts the server down (SIGINT: fast shutdown) and removes the cluster."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.user = "xeroml"
        self.db = "dagster"
        self.proc: subprocess.Popen | None = None
        self.root: Path | None = None
        # PostgreSQL refuses to run as root: then the cluster belongs to an unprivileged account
        self.account = None
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                self.account = pwd.getpwnam("postgres")
            self.account = self.account or pwd.getpwnam("nobody")

    def _as_owner(self) -> dict:
        return {"user": self.account.pw_uid, "group": self.account.pw_gid} if self.account else {}

    def start(self) -> Postgres:
        try:
            # not under pytest's tmp_path: its parents are private to root, the server's account
            # could not reach its own folder there
            self.root = Path(tempfile.mkdtemp(prefix="xeroml-pg-"))
            if self.account:
                os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
            data = self.root / "data"
            init = subprocess.run(
                [str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"],
                capture_output=True,
                text=True,
                timeout=120,
                **self._as_owner(),
            )
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
            argv = [str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port)]
            argv += ["-k", str(self.root), "-c", "fsync=off", "-c", "max_connections=200"]
            with open(self.root / "server.log", "ab") as log:
                self.proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._as_owner()
                )
            self._wait_ready()
            self._psql(f"CREATE DATABASE {self.db}")
        except BaseException:
            self.stop()
            raise
        return self

    def _psql(self, sql: str, db: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", db, "-tAc", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def query(self, sql: str) -> str:
        return self._psql(sql, self.db)

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, timeout=10
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"postgres did not accept connections in {timeout}s: {self.log()}")

    def log(self) -> str:
        path = self.root / "server.log" if self.root else None
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    @property
    def env(self) -> dict[str, str]:
        """deploy/dagster.yaml's settings for this server."""
        return {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": "",
            "DAGSTER_POSTGRES_DB": self.db,
        }

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # its background workers are in the postmaster's session: none may outlive it
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
