"""The embedded default destination: a folder on local disk."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.destinations.errors import DestinationError
from xeroml_pipelines.processes import alive

# Staged files live here, not beside the data, so a `{table}/*.jsonl` glob never sees a partial
# file; a process killed mid-write leaves an orphan here, removed by the next upload on this host.
STAGING_DIR = "_staging"
LOCKS_DIR = "_locks"
_HOST = socket.gethostname().replace("-", "_")
DEFAULT_EXPORT_DIR = "xeroml-export"


def _remove_orphans(staging: Path) -> None:
    """Staged files of processes of this host that are gone (killed mid-write). Files of other
    hosts sharing the folder are left alone: their writers may be alive."""
    for path in staging.glob(f"{_HOST}-*.part"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)


# Failures only the operator can fix: no retry, say what to do.
_NEEDS_OPERATOR = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


@contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if e.errno in _NEEDS_OPERATOR:
            raise DestinationError(
                f"{path}: {_NEEDS_OPERATOR[e.errno]}; nothing of this partition was published. "
                "Free space or fix the folder's permissions, then re-run.",
                permanent=True,
            ) from None
        raise DestinationError(f"{path}: {e.strerror or e} ({type(e).__name__})", permanent=False) from e


class _StagedFile:
    def __init__(self, root: Path, final: Path) -> None:
        self._final = final
        staging = root / STAGING_DIR
        with _disk_errors(final):
            staging.mkdir(parents=True, exist_ok=True)
            _remove_orphans(staging)
            self._path = staging / f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex}.part"
            self._file = open(self._path, "wb")  # noqa: SIM115 - open until commit or abort

    def write(self, data: bytes | memoryview) -> None:
        with _disk_errors(self._final):
            self._file.write(data)

    def commit(self, size: int) -> None:
        with _disk_errors(self._final):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            on_disk = self._path.stat().st_size
            if on_disk != size:
                raise DestinationError(f"staged file {self._path} holds {on_disk} bytes, expected {size}", permanent=False)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path, self._final)
            _fsync_dir(self._final.parent)

    def abort(self) -> None:
        # flushing what is buffered can fail again (a full disk): it is discarded anyway
        with contextlib.suppress(OSError):
            self._file.close()
        self._path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFolder(Destination):
    """A folder on local disk: the embedded default destination."""

    provider: Literal["local"] = "local"
    path: str = Field(default=DEFAULT_EXPORT_DIR, description="Destination folder; relative paths are from the working directory")

    @property
    def location(self) -> str:
        return str(self._root / self.prefix)

    @property
    def _root(self) -> Path:
        return Path(self.path).absolute()

    def _path(self, key: str) -> Path:
        return self._root / key

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def open_upload(self, key: str) -> _StagedFile:
        return _StagedFile(self._root, self._path(key))

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_small(self, key: str, data: bytes) -> None:
        upload = self.open_upload(key)
        try:
            upload.write(data)
            upload.commit(len(data))
        except BaseException:
            upload.abort()
            raise

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def download(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def local_copy(self, key: str, directory: Path) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(self.uri(key))
        return path

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix) if prefix else self._root
        # a prefix that is not a folder ("traces/2025-01-15.") lists the names it starts, as an
        # object store does, reading only that folder's entries
        matches = [base] if not prefix or prefix.endswith("/") else sorted(base.parent.glob(glob.escape(base.name) + "*"))
        for match in matches:
            paths = sorted(match.rglob("*")) if match.is_dir() else [match]
            for path in paths:
                if path.is_file():
                    yield path.relative_to(self._root).as_posix(), path.stat().st_size

    @contextmanager
    def partition_lock(self, key: str) -> Iterator[None]:
        lock_path = self._root / LOCKS_DIR / (key + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
