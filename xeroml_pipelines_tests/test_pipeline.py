"""The prefetch stage: order kept, errors surface in the consumer, an early stop stops the producer."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from xeroml_pipelines.export.pipeline import prefetched


def test_items_arrive_in_order_and_bounded() -> None:
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    with prefetched(source(), depth=2) as items:
        first = next(items)
        time.sleep(0.2)
        # the producer ran ahead by the queue depth (+1 in hand), not to the end
        assert first == 0 and len(produced) <= 4
        assert [first, *items] == list(range(50))


def test_producer_error_is_raised_in_the_consumer() -> None:
    def source():
        yield 1
        raise ConnectionError("ClickHouse connection dropped mid-stream")

    with pytest.raises(ConnectionError, match="dropped"), prefetched(source()) as items:
        assert next(items) == 1
        next(items)


def test_early_exit_stops_an_endless_producer() -> None:
    threads_before = threading.active_count()
    with pytest.raises(RuntimeError, match="upload failed"), prefetched(itertools.count()) as items:
        next(items)
        raise RuntimeError("upload failed")
    time.sleep(0.1)
    assert threading.active_count() == threads_before
