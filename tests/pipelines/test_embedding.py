"""Streaming embedding helpers: blocks prefetched in order, errors and early stops handled."""

from __future__ import annotations

import threading

import pytest

from pipelines.embedding import _prefetch


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(_prefetch(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("row 7: not finite")

    got = []
    with pytest.raises(ValueError, match="row 7"):
        for item in _prefetch(failing()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early():
    before = threading.active_count()
    for item in _prefetch(iter(range(1000)), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before
