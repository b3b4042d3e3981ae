"""Ctrl-C and SIGTERM during a run that changes a deployment: stop sending, but always clean up.

``mockserver contract`` and ``mockserver diff`` both create profiles on a real deployment, so both
stop the same way: the first signal marks the run as stopping and interrupts it, and the cleanup
that follows cannot be interrupted by a second one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C, or the SIGTERM a CI runner stops a job with, calls ``stop`` and interrupts the run.

    The handler calls ``stop`` (which marks the run as stopping), then raises KeyboardInterrupt as
    Python's own does. The mark is what makes the stop certain: an interrupt can be raised where it
    is lost (inside a finaliser, or where Schemathesis swallows it), and then the code that sends
    requests still sees the mark and sends nothing more. A SIGINT that was ignored when we started
    (a job put in the background by a shell) stays ignored.
    """

    def handler(signum: int, frame: Any) -> None:
        stop()
        raise KeyboardInterrupt

    stopping = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        stopping.append(signal.SIGINT)
    with handling(stopping, handler):
        yield


def shielded(action: Callable[[], T], on_error: Callable[[Exception], T]) -> T:
    """Run ``action`` with Ctrl-C and SIGTERM ignored: a second Ctrl-C must not stop the cleanup."""
    with handling([signal.SIGINT, signal.SIGTERM], signal.SIG_IGN):
        try:
            return action()
        except Exception as exc:
            return on_error(exc)


@contextmanager
def handling(signals: list[signal.Signals], handler: Any) -> Iterator[None]:
    """``handler`` for ``signals`` while inside, the previous ones after; nothing outside the main
    thread, where Python does not allow setting handlers."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, handler) for sig in signals} if in_main else {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
