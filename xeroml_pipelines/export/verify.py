"""`verify`: a destination's objects listed against its manifests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.windows import Window


@dataclass(frozen=True)
class VerifyReport:
    table: str
    manifests: int
    objects: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _empty_parquet(destination: Destination, key: str, size: int) -> bool:
    """A Parquet file of zero rows (a neutralized stale object: a few KB of schema and footer)."""
    if not key.endswith(".parquet") or size > 64 * 1024:
        return False
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(pa.BufferReader(destination.read_bytes(key))).metadata.num_rows == 0
    except (OSError, pa.ArrowException):
        return False


def _compare(
    destination: Destination, table: str, manifests: list[tuple[str, bytes | None]], objects: dict[str, int], deep: bool
) -> VerifyReport:
    """Each manifest (its key, its bytes or None when absent) against the listed `objects`."""
    problems: list[str] = []
    referenced: set[str] = set()
    for key, raw in manifests:
        if raw is None:
            problems.append(f"{destination.uri(key)}: no manifest (the partition was not exported)")
            continue
        try:
            m = Manifest.model_validate_json(raw)
        except ValueError as e:
            problems.append(f"{destination.uri(key)}: unreadable manifest ({type(e).__name__})")
            continue
        if m.object_key is None:
            continue
        referenced.add(m.object_key)
        if m.object_key not in objects:
            problems.append(f"{destination.uri(m.object_key)}: missing, but manifest {key} lists it ({m.rows} rows)")
        elif objects[m.object_key] != m.bytes:
            problems.append(f"{destination.uri(m.object_key)}: {objects[m.object_key]} bytes, manifest says {m.bytes}")
        elif deep and hashlib.sha256(destination.read_bytes(m.object_key)).hexdigest() != m.sha256:
            problems.append(f"{destination.uri(m.object_key)}: sha256 differs from its manifest")
    for key, size in sorted(objects.items()):
        # empty objects are stale files neutralized where deleting is not permitted
        if key not in referenced and size > 0 and not _empty_parquet(destination, key, size):
            problems.append(f"{destination.uri(key)}: data object without a manifest (partial run or stale file)")
    return VerifyReport(table, len(manifests), len(objects), tuple(problems))


def _read(destination: Destination, key: str) -> bytes | None:
    try:
        return destination.read_bytes(key)
    except FileNotFoundError:
        return None


def verify(destination: Destination, layout: Layout, table: str, deep: bool = False) -> VerifyReport:
    """Compare a table's manifests with the objects under its folder: every manifest's object
    exists with its size (and, with `deep`, its sha256), and every data object has a manifest.
    Reads every manifest: its cost grows with the history, so it runs on its own schedule."""
    objects = dict(destination.list_objects(layout.table_folder(table)))
    keys = [k for k, _ in destination.list_objects(layout.manifests_folder(table)) if k.endswith(".json")]
    return _compare(destination, table, [(k, _read(destination, k) or b"") for k in keys], objects, deep)


def verify_partitions(destination: Destination, layout: Layout, table: str, windows: Sequence[Window]) -> VerifyReport:
    """The same comparison for these partitions only: one manifest read and one listing of the
    partition's own objects each, whatever else the destination holds."""
    objects: dict[str, int] = {}
    manifests = []
    for window in windows:
        objects.update(destination.list_objects(layout.partition_prefix(table, window)))
        key = layout.manifest_key(table, window)
        manifests.append((key, _read(destination, key)))
    return _compare(destination, table, manifests, objects, deep=False)
