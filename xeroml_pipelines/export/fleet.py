"""One query, many projects: a table's window (or range) read once for every project due, each
project's files written to its own destination with the guarantees of a single export (staged
upload, commit under the partition's lock, manifest; see `writer.py`).

The query returns each project's rows together (`_project_index`, in its order), so one
project's files are open at a time: when its rows end they are committed on a bounded pool of
threads while the scan streams the next projects, and uploads to different destinations overlap.
A destination that fails fails its own project only (`Outcome.error`); the others go on. A failure
of the query itself (the platform's) is raised, after the commits already under way have ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.errors import ExportError
from xeroml_pipelines.export.allocator import return_freed_memory
from xeroml_pipelines.export.cutting import cut_by_partition
from xeroml_pipelines.export.engine import partitions_per_query
from xeroml_pipelines.export.formats import Format, format_for
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.export.pipeline import prefetched
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.export.writer import PartitionWriter, QueryClock
from xeroml_pipelines.windows import Window


@dataclass(frozen=True)
class Target:
    """One project's export in a fleet query: where its files go, and from which window on."""

    name: str  # the registered export's name
    project_id: str
    destination: Destination
    layout: Layout
    first_window: int = 0  # `Window.index` of its first window (its start date)
    last_window: int | None = None  # and of its last (its end date), if it has one

    def covers(self, window: Window) -> bool:
        return covers(self.first_window, self.last_window, window)


def covers(first: int, last: int | None, window: Window) -> bool:
    return first <= window.index and (last is None or window.index <= last)


@dataclass
class Outcome:
    name: str
    manifests: list[Manifest] = field(default_factory=list)
    error: ExportError | None = None


def _as_export_error(name: str, error: Exception) -> ExportError:
    if isinstance(error, ExportError):
        return error
    # an SDK failure not classified by its provider: its text may quote request details, so only
    # its kind is kept; retrying is the safe guess
    return ExportError(f"{name}: the destination failed ({type(error).__name__})", permanent=False)


class _Commits:
    """Commits of finished projects' files, `workers` at a time, at most twice that many waiting
    (each holds its files' last buffers): the scan waits rather than piling them up."""

    def __init__(self, workers: int, run_id: str | None, fail: Callable[[Target, Exception], None]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xeroml-commit")
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._futures: list[Future] = []
        self._run_id, self._fail = run_id, fail

    def submit(self, target: Target, writers: list[PartitionWriter], clock: QueryClock, outcome: Outcome) -> None:
        self._slots.acquire()
        self._futures.append(self._pool.submit(self._commit, target, writers, clock, outcome))

    def _commit(self, target: Target, writers: list[PartitionWriter], clock: QueryClock, outcome: Outcome) -> None:
        try:
            for writer in writers:  # in time order
                if outcome.error is not None:
                    writer.abort()
                    continue
                try:
                    outcome.manifests.append(writer.commit(clock, self._run_id))
                except Exception as e:  # noqa: BLE001 - the project's own failure, recorded
                    self._fail(target, e)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Waits for every commit (they record their own failures)."""
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()


def export_fleet(
    targets: Sequence[Target], stream: ExportStream, projects: Sequence[str], run_id: str | None, uploads: int = 8
) -> dict[str, Outcome]:
    """Exports `stream` (its source reads `projects`, in that order) into every target's
    destination: one query per group of consecutive windows for all targets."""
    return_freed_memory()
    fleet = _Fleet(targets, stream, projects)
    sizes = [partitions_per_query(t.destination, fleet.formats[t.name]) for t in targets]
    size = min((s for s in sizes if s), default=len(stream.windows))
    commits = _Commits(uploads, run_id, fleet.fail)
    try:
        for start in range(0, len(stream.windows), size):
            fleet.export_group(stream.windows[start : start + size], commits)
    finally:
        commits.close()
    return fleet.outcomes


class _Fleet:
    def __init__(self, targets: Sequence[Target], stream: ExportStream, projects: Sequence[str]) -> None:
        self.stream = stream
        self.outcomes = {t.name: Outcome(t.name) for t in targets}
        position = {project: i for i, project in enumerate(projects)}
        self.by_project: dict[int, list[Target]] = {}
        for target in targets:
            self.by_project.setdefault(position[target.project_id], []).append(target)
        self.formats: dict[str, Format] = {
            t.name: format_for(t.layout.file_format, t.layout.compression, stream.table, stream.exclude) for t in targets
        }
        if len({f.shape for f in self.formats.values()}) > 1:
            raise ValueError("one fleet query serves targets of one file format")
        self.format = next(iter(self.formats.values()))  # what the cutter prepares: the same for each target
        self.streams = {t.name: replace(stream, export_name=t.name, project_id=t.project_id) for t in targets}
        self._lock = threading.Lock()

    def fail(self, target: Target, error: Exception) -> None:
        with self._lock:
            outcome = self.outcomes[target.name]
            if outcome.error is None:
                outcome.error = _as_export_error(target.name, error)

    def export_group(self, group: Sequence[Window], commits: _Commits) -> None:
        clock = QueryClock()
        indexes = {w.index for w in group}
        open_files: dict[str, dict[int, PartitionWriter]] = {}
        finished: set[int] = set()

        def open_project(project: int) -> None:
            for target in self.by_project[project]:
                if self.outcomes[target.name].error is None:
                    stream, fmt = self.streams[target.name], self.formats[target.name]
                    open_files[target.name] = {
                        w.index: PartitionWriter(target.destination, target.layout, stream, w, fmt)
                        for w in group
                        if target.covers(w)
                    }

        def finish_project(project: int) -> None:
            for target in self.by_project[project]:
                writers = open_files.pop(target.name, None)
                if writers is not None:
                    commits.submit(target, list(writers.values()), clock, self.outcomes[target.name])
            finished.add(project)

        current: int | None = None
        try:
            with (
                self.stream.source.open(group, self.format.shape) as batches,
                prefetched(batches) as ahead,
                prefetched(cut_by_partition(ahead, self.format.prepare)) as chunks,
            ):
                for chunk in chunks:
                    if chunk.window_index not in indexes:
                        raise RuntimeError(f"{self.stream.table}: rows of window {chunk.window_index} arrived unasked")
                    if chunk.project_index != current:
                        if current is not None:
                            finish_project(current)
                        current = chunk.project_index
                        if current in finished or current not in self.by_project:
                            raise RuntimeError(f"{self.stream.table}: rows of project #{current} arrived out of order or unasked")
                        open_project(current)
                    for target in self.by_project[current]:
                        writer = open_files.get(target.name, {}).get(chunk.window_index)
                        if writer is None:  # a failed target, or a window outside its dates
                            continue
                        try:
                            writer.add(chunk)
                        except Exception as e:  # noqa: BLE001 - the project's own failure, recorded
                            self.fail(target, e)
                            for dropped in open_files.pop(target.name).values():
                                dropped.abort()
            if current is not None:
                finish_project(current)
            for project in self.by_project:  # projects without rows in these windows: their manifests
                if project not in finished:
                    open_project(project)
                    finish_project(project)
        finally:
            for writers in open_files.values():  # the query failed: what was not handed on is dropped
                for writer in writers.values():
                    writer.abort()
