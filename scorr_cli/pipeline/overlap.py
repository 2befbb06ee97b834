"""Decoding and encoding beside the model: a reader thread ahead of it, a writer thread behind it.

torch releases the GIL while it computes, so on a CPU the frames of the next batch can be decoded
and cropped, and those of the last batch piped into the encoder, while the model runs. Both threads
keep the streaming contract (a bounded queue: memory does not grow with the clip), hand their
errors to the caller, and stop when the caller stops (Ctrl-C, an error, breaking out of a loop):
nothing keeps running or holds a file after the call that started it has returned.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_POLL_S = 0.1  # how often a blocked thread checks whether it should stop
_END = object()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put unless told to stop first; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable[Any], depth: int = 8) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead of the consumer.

    An exception in the producer is raised in the consumer at the item where it happened. When the
    consumer stops early (or is closed), the producer stops and its iterator is closed (a video
    decoder's ffmpeg exits).
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not _put(q, (True, item), stop):
                    return
            _put(q, (True, _END), stop)
        except BaseException as e:  # handed to the consumer
            _put(q, (False, e), stop)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="scorr-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundSink:
    """Call ``write(item)`` for each :meth:`put` item in a background thread (e.g. piping frames to an
    encoder), at most ``depth`` items behind. :meth:`finish` waits for all of them; an error in
    ``write`` is raised by the next :meth:`put` or by :meth:`finish`. Use as a context manager:
    leaving the block by an exception stops the thread without waiting for the queue."""

    def __init__(self, write: Callable[[Any], None], depth: int = 8):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scorr-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._write(item)
            except BaseException as e:
                self._error = e
                self._stop.set()
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: Any) -> None:
        self._raise()
        if not _put(self._q, item, self._stop):
            self._raise()
            raise RuntimeError("background writer stopped")

    def finish(self) -> None:
        """Wait until every item is written."""
        _put(self._q, _END, self._stop)
        self._thread.join()
        self._raise()

    def __enter__(self) -> "BackgroundSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._stop.set()
            self._thread.join()
