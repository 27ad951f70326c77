"""The analysis pass decodes ahead in a background thread: order, errors and early exits."""

import threading

import pytest

from vidgraph.media.analysis import prefetch


@pytest.mark.parametrize("chunk", [1, 7])
def test_items_come_back_in_order_with_their_results(chunk):
    got = list(prefetch(iter(range(100)), lambda x: x * x, depth=3, chunk=chunk))
    assert got == [(i, i * i) for i in range(100)]


@pytest.mark.parametrize("chunk", [1, 8])
def test_an_error_in_the_producer_is_raised_to_the_consumer(chunk):
    def items():
        yield 1
        yield 2
        raise ValueError("damaged packet")

    got = []
    with pytest.raises(ValueError, match="damaged packet"):
        for item, _ in prefetch(items(), lambda x: x, chunk=chunk):
            got.append(item)
    assert got == [1, 2]  # the items of an unfinished chunk still arrive before the error


def test_stopping_early_joins_the_producer_before_returning():
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    gen = prefetch(items(), lambda x: x, depth=2)
    for item, _ in gen:
        if item == 5:
            break
    gen.close()
    # The producer thread is gone (the container may be closed now) and stopped soon after item 5.
    assert not any(t.name == "vidgraph-decode" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 20


def test_the_idle_marker_comes_when_the_consumer_has_caught_up():
    import time

    from vidgraph.media.analysis import IDLE

    def slow():
        for i in range(6):
            time.sleep(0.01)  # the producer is the slow side: the consumer waits for every chunk
            yield i

    got = list(prefetch(slow(), lambda x: -x, chunk=2, mark_idle=True))
    assert [g for g in got if g is not IDLE] == [(i, -i) for i in range(6)]
    assert got[0] is IDLE and got.count(IDLE) >= 3  # before the first chunk and between chunks
    # without the flag, no marker
    assert IDLE not in list(prefetch(slow(), lambda x: x, chunk=2))
