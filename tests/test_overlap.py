"""Decoding and encoding beside the model (scorr_cli.pipeline.overlap): order, errors, stopping, overlap."""

from __future__ import annotations

import threading

import pytest

from scorr_cli.pipeline.overlap import BackgroundSink, prefetch


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_prefetch_keeps_order_and_works_ahead():
    """The producer decodes item 1 while the consumer still holds item 0: a serial iterator would never set
    the event and the wait would time out."""
    ahead = threading.Event()

    def frames():
        yield 0
        ahead.set()  # reached only when item 1 is being produced
        yield from range(1, 20)

    out = []
    for item in prefetch(frames(), depth=2):
        if item == 0:
            assert ahead.wait(timeout=10), "the producer did not run ahead of the consumer"
        out.append(item)
    assert out == list(range(20))
    assert _threads("scorr-prefetch") == []


def test_prefetch_raises_the_producers_error_in_place():
    def frames():
        yield from range(3)
        raise ValueError("corrupt frame 3")

    got = []
    with pytest.raises(ValueError, match="corrupt frame 3"):
        for item in prefetch(frames()):
            got.append(item)
    assert got == [0, 1, 2]


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    """Breaking out (or Ctrl-C in the consumer) closes the source iterator: a decoder's ffmpeg would exit."""
    closed = threading.Event()

    def frames():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(frames(), depth=4)
    for item in stream:
        if item == 5:
            break
    stream.close()
    assert closed.wait(timeout=10) and _threads("scorr-prefetch") == []


def test_background_sink_writes_everything_in_order_and_reports_errors():
    written = []
    with BackgroundSink(written.append, depth=2) as sink:
        for i in range(50):
            sink.put(i)
        sink.finish()
    assert written == list(range(50)) and _threads("scorr-writer") == []

    def failing(item):
        if item == 3:
            raise OSError("encoding failed")

    with pytest.raises(OSError, match="encoding failed"):
        with BackgroundSink(failing, depth=1) as sink:
            for i in range(100):
                sink.put(i)
            sink.finish()
    assert _threads("scorr-writer") == []


def test_background_sink_stops_without_draining_when_the_block_fails():
    """Ctrl-C while frames are queued: the writer finishes the frame in hand and drops the rest (the atomic
    writer then discards its temp file) instead of encoding a clip nobody will keep."""
    never = threading.Event()
    written = []

    def slow(item):
        never.wait(timeout=1.0)  # busy with the first frame while the block fails
        written.append(item)

    with pytest.raises(KeyboardInterrupt):
        with BackgroundSink(slow, depth=8) as sink:
            for i in range(5):
                sink.put(i)
            raise KeyboardInterrupt
    assert _threads("scorr-writer") == [] and len(written) <= 1
