"""What the three object stores share: a partition's commit serialized between runs by a lock
object written with the store's conditional writes.

Two runs of one partition (a schedule's and a backfill's, two deployments) each stage their
object privately; the commit then publishes the object, removes a stale one and writes the
manifest, three requests that must not interleave with another run's, or a manifest could
describe the other run's object. The lock object `_locks/<manifest key>.lock` is created only if
absent (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure `If-None-Match: *`) and replaced
or removed only at the version read (`If-Match`, `ifGenerationMatch`, the ETag): exactly one
run holds it, whatever the number of writers.

A run that dies holding it (a killed process, a lost host) blocks the partition's commits only
until the lock expires (`LOCK_TTL_S`, far above a commit's few requests); a dead process of this
host frees it at once, as the local folder's orphan staging files are.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import get_dagster_logger

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.destinations.errors import DestinationError
from xeroml_pipelines.processes import alive

LOCKS_DIR = "_locks"
LOCK_TTL_S = 600.0
_HOST = socket.gethostname()


def lock_key(key: str) -> str:
    return f"{LOCKS_DIR}/{key}.lock"


def _holder(body: bytes) -> tuple[str, float, str, int] | None:
    """(token, expires_at, host, pid) of a held lock; None for a released (empty) or unreadable one."""
    try:
        held = json.loads(body)
        return str(held["token"]), float(held["expires_at"]), str(held["host"]), int(held["pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _is_free(body: bytes, now: float) -> bool:
    """Released, expired, or held by a process of this host that is gone."""
    holder = _holder(body)
    return holder is None or holder[1] <= now or (holder[2] == _HOST and not alive(holder[3]))


class ObjectStore(Destination):
    """A bucket or container: the provider supplies versioned reads and conditional writes."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its version (ETag, generation), or None if there is none."""

    @abstractmethod
    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        """Write the object only if it is still at `version` (None: only if it does not exist).
        Returns the new version, or None when the condition failed (another writer was first)."""

    @abstractmethod
    def delete_if(self, key: str, version: str) -> bool:
        """Remove the object if it is still at `version` (False if it was not); `PermissionError`
        if deleting is not allowed."""

    @contextmanager
    def partition_lock(self, key: str, ttl_s: float = LOCK_TTL_S) -> Iterator[None]:
        path = lock_key(key)
        version = self._acquire(path, ttl_s)
        try:
            yield
        finally:
            self._release(path, version)

    def _acquire(self, path: str, ttl_s: float) -> str:
        token = uuid.uuid4().hex
        # waiting past the TTL means a holder that neither finished nor expired: not a live run
        deadline = time.monotonic() + ttl_s + 60
        delay = 0.05
        while True:
            current = self.read_versioned(path)
            now = time.time()
            if current is not None and (held := _holder(current[0])) is not None and held[0] == token:
                return current[1]  # a retried write whose first attempt had succeeded
            if current is None or _is_free(current[0], now):
                body = json.dumps({"host": _HOST, "pid": os.getpid(), "token": token, "expires_at": now + ttl_s}).encode()
                version = self.write_if(path, body, None if current is None else current[1])
                # read back: a store that checked and wrote in two steps may have let a second writer in
                if version is not None and (mine := self.read_versioned(path)) is not None and mine[1] == version:
                    return version
            if time.monotonic() > deadline:
                raise DestinationError(
                    f"{self.uri(path)}: another run has held this partition's commit lock for over {ttl_s:.0f} s; "
                    "if no run is exporting the partition, delete the lock object and re-run",
                    permanent=False,
                )
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 1.5, 1.0)

    def _release(self, path: str, version: str) -> None:
        try:
            released = self.delete_if(path, version)
        except PermissionError:
            # without delete permission the lock object stays, marked free for the next run
            released = self.write_if(path, b"", version) is not None
        if not released:
            get_dagster_logger().warning(f"{self.uri(path)}: this run's commit outlasted its lock, which another run took over")
