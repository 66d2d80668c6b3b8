"""Overlap the stages of an export: reading ClickHouse, serializing, compressing and uploading.

Each stage runs ahead of the next in its own thread through a small bounded queue, so memory
stays bounded (`depth` items in flight per stage) while both cores work: chDB, Polars, zstd and
the SDKs' socket writes all release the GIL.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextmanager
def prefetched(source: Iterable[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate `source` in a background thread, at most `depth` items ahead of the consumer.

    An exception in the producer is raised in the consumer; leaving the block early (the
    consumer failed or stopped) stops the producer and waits for it, so the source can be
    closed safely right after.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_Failure(e))

    worker = threading.Thread(target=produce, name="xeroml-prefetch", daemon=True)
    worker.start()

    def consume() -> Iterator[T]:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    try:
        yield consume()
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.1)  # unblock a producer waiting on a full queue
        worker.join()
