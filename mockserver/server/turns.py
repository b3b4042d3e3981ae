"""One turn at a time: the threads that serve requests run the mock's Python one after the other.

Several threads that all want the interpreter lock hand it over at every switch interval, and each
hand-over costs them all (granian at 8 threads served about half of what it served at 1). The turn
is a plain lock that a request holds while it runs Python, so the other serving threads wait for it
asleep in the lock, not in the interpreter lock's queue: 8 threads serve at about 1 thread's rate.

The threads are still there for the waits that are not CPU work, and a request gives the turn up
around them, so that others run meanwhile:

- ``pause()``: around a wait after which the request takes the turn back (the sleep of
  ``Prefer: delay``, ``--latency`` and a session's chaos latency). So delayed answers wait at once.
- ``leave()``: the request gives the turn up for the rest of its run (the store calls it before a
  save's commit and sync, and before a shared state's round trips: ``Store.waiting``). It does not
  take the turn back: it may hold the store's lock, or another, that the thread holding the turn
  then would wait for, and neither would go on. What is left of it (the answer's check, the journal)
  runs beside the holder's turn, as every request did before. So a read never waits for a write's
  sync.

On granian the worker's event loop runs most requests (``server/rsgi.py``), and nothing may wait
there: ``pause``, ``leave`` and ``must_not_wait`` raise ``Rerun`` on the loop's thread (and ``pause``
and ``must_not_delay`` on the thread of a state file's writes, which waits for the disk but never out
a delay), always before
the request has changed anything (the delay is known before the operation runs, and the store gives
its turn up before it takes its lock or writes), and the request runs again, from the start, on a
thread.

A thread that does not hold the turn (a test's own thread, the log writer, the reloader) runs as it
always did: ``pause`` and ``leave`` do nothing there. The turn is one per process, as the
interpreter lock is, whatever the number of apps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_holder: int | None = None  # the thread holding the turn
_ident = threading.get_ident
_loop: int | None = None  # the event loop's thread, where no request may wait (server/rsgi.py)
_writes: int | None = None  # the thread of a state file's writes, where no request waits out a delay


# The environ key where the app leaves a ``Prefer: fault`` for the server to carry out (server/rsgi.py; on
# waitress the answer itself breaks the connection: serving.no_answer, serving.half_answer).
FAULT_KEY = "mockserver.fault"


class Rerun(BaseException):
    """Raised on the event loop's thread where a request would wait, before it has changed anything:
    the server runs it again on a thread. A ``BaseException``, so that no handler of the app's takes it
    for an error."""


def serve_inline_here() -> None:
    """This thread is the event loop's: a request that would wait here raises ``Rerun``."""
    global _loop
    _loop = _ident()


def must_not_wait() -> None:
    """Raise ``Rerun`` on the event loop's thread (a request is about to wait: a delay, a disk, a lock)."""
    if _loop is not None and _ident() == _loop:
        raise Rerun


def serve_writes_here() -> None:
    """This thread runs the writes to a state file (server/rsgi.py): it may wait for the store and its
    disk, but not out a delay, which would hold every write behind it."""
    global _writes
    _writes = _ident()


def must_not_delay() -> None:
    """Raise ``Rerun`` on the event loop's thread and on the writes' thread: a request is about to wait out
    a delay (``Prefer: delay``, ``--latency``, a session's chaos latency)."""
    me = _ident()
    if me == _loop or me == _writes:
        raise Rerun


class Turns:
    """WSGI middleware: ``app`` runs in the turn; what the server does with its answer, outside it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        global _holder
        me = _ident()
        if _holder == me:  # already in the turn (an app called from inside another)
            return self.app(environ, start_response)
        _lock.acquire()
        _holder = me
        try:
            return self.app(environ, start_response)
        finally:
            if _holder == me:  # else it left the turn on the way
                _holder = None
                _lock.release()


@contextmanager
def pause() -> Iterator[None]:
    """Let other requests run while this thread waits; take the turn back after."""
    global _holder
    must_not_delay()
    me = _ident()
    if _holder != me:
        yield
        return
    _holder = None
    _lock.release()
    try:
        yield
    finally:
        _lock.acquire()
        _holder = me


@contextmanager
def leave() -> Iterator[None]:
    """Give the turn up for the rest of this request (see the module's docstring for why not back)."""
    global _holder
    must_not_wait()
    if _holder == _ident():
        _holder = None
        _lock.release()
    yield


def holding() -> bool:
    """Whether this thread holds the turn."""
    return _holder == _ident()
