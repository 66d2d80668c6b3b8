"""The export of a stream's partitions to a destination: queries, threads, files, manifests."""

from __future__ import annotations

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.allocator import return_freed_memory
from xeroml_pipelines.export.cutting import cut_by_partition
from xeroml_pipelines.export.formats import Format, format_for
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.export.pipeline import prefetched
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.export.writer import PartitionWriter, QueryClock

# The buffers of the files a range query has open at once (an upload's part, chunk or block, a
# Parquet file's open row group) stay within this; a partition's own file holds one of each,
# however large the partition.
FILE_BUFFERS_BUDGET = 512 * 1024 * 1024


def partitions_per_query(destination: Destination, fmt: Format) -> int | None:
    """How many partitions one query may feed at once (None: all of a range)."""
    buffer = destination.upload_buffer_bytes + fmt.buffer_bytes
    return max(1, FILE_BUFFERS_BUDGET // buffer) if buffer else None


def export(destination: Destination, layout: Layout, stream: ExportStream, run_id: str | None) -> list[Manifest]:
    """One query per group of consecutive partitions (a whole range when the destination can
    have that many files open), its rows streamed into one object per partition; a group's
    objects are committed when its query ends. A failure aborts the group's uploads, leaving
    earlier groups committed and this and later ones untouched."""
    return_freed_memory()
    manifests: list[Manifest] = []
    fmt = format_for(layout.file_format, layout.compression, stream.table, stream.exclude)
    size = partitions_per_query(destination, fmt) or len(stream.windows)
    for first in range(0, len(stream.windows), size):
        group = stream.windows[first : first + size]
        clock = QueryClock()  # this group's query: its manifests' query_started_at and query_seconds
        writers = {window.index: PartitionWriter(destination, layout, stream, window, fmt) for window in group}
        try:
            # three stages on their own threads: ClickHouse -> cutting into partitions -> compress and upload (here)
            with (
                stream.source.open(group, fmt.shape) as batches,
                prefetched(batches) as ahead,
                prefetched(cut_by_partition(ahead, fmt.prepare)) as chunks,
            ):
                for chunk in chunks:
                    writer = writers.get(chunk.window_index) if chunk.project_index == 0 else None
                    if writer is None:
                        raise RuntimeError(
                            f"rows of window {chunk.window_index} arrived outside {group[0].partition}..{group[-1].partition} "
                            f"for {stream.table}"
                        )
                    writer.add(chunk)
            for writer in writers.values():  # in time order; partitions without rows get their manifest
                manifests.append(writer.commit(clock, run_id))
        finally:
            for writer in writers.values():
                writer.abort()
    return manifests
