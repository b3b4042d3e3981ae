"""`mockserver serve` on granian (the default on Linux): a Rust HTTP server, the app in worker processes.

`make bench` ("servers side by side") measures the candidates: granian serves the mock several times as
fast as waitress on this project's machine, because the HTTP work leaves Python. Where it cannot run
(no fork, or granian missing), `mockserver serve` falls back to waitress (``--server auto``, the default).

- **The workers build the app.** granian forks ``workers`` processes (one by default) from this
  process, which share the listening socket. Each worker calls ``build``: it opens the state (with
  one worker, it holds the state file's lock), starts its own threads (log writer, reloader), and
  sends this process the lines to announce. This process announces once every worker has said it is
  ready and the port answers, so a client that reads "listening on" can connect at once.
- **Several workers share one state** (``--workers N``): see ``shared_state``, which this process
  enters before granian starts. It holds the SQLite file's lock for all of them (or makes them a
  temporary file), so another ``mockserver serve`` on the file is still refused.
- **They die with this process.** Linux's parent-death signal kills every worker when this process
  ends, even by ``kill -9``: no worker is left holding the port or the state file.
- **Ctrl-C and SIGTERM** reach granian, which stops the workers gracefully; each writes its queued
  log lines as it exits. A worker still building its app ends at once.
- **One turn at a time.** granian runs the app on ``threads`` blocking threads (8), so that that many
  delayed answers (``Prefer: delay``, ``--latency``) can wait at once, as on waitress. Threads that
  all want the interpreter lock hand it over at every switch interval, and a request waited several
  intervals: p99 30-60 ms at the default 5 ms, against 1 thread's 5-20 ms (wrk -t1 -c10, six
  alternating rounds). The worker sets a 1 ms interval (``SWITCH_INTERVAL``: p99 9-24 ms in that run)
  and wraps the app in ``turns.Turns``: one request at a time runs the mock's Python, the others
  wait asleep in a lock, and a request gives its turn up around a delay's sleep and before the store
  waits on its disk or database (``server/turns.py``). Measured on GET one (wrk -t1 -c10, 4-5 s
  rounds, the servers taking turns, on the 2 cores shared with other jobs: load average 3-9), the
  turn lowered the median p99 in each of six runs (by 1 to 35 ms; 19.7 against 20.6 ms in the
  quietest), but not the rate: 8 threads served about what they served without it (within 10%
  either way), and 1 thread still more (2,822 req/s against 2,685 in the quietest run, at 322 us of
  the worker's CPU a request against 411, and half its context switches). What is left of the
  threads' cost happens before the app is called: granian hands each request to whichever thread is
  idle, and that thread takes the interpreter lock to build the request's environ.
- **``Prefer: fault=empty``** is exact here too: see ``serving.no_answer``.
- **Only where processes fork** (Linux). The pytest plugin's in-thread server is always waitress.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import multiprocessing
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mockserver.server.turns import Turns
from mockserver.settings import Settings

# (url, the worker's number: 1..N in the order they start) -> (the WSGI app, the lines to announce)
Build = Callable[[str, int], tuple[Any, list[str]]]
_READY = b"+"  # starts a worker's message on the socket; a lone _FAILED means it could not start
_FAILED = b"-"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
SWITCH_INTERVAL = 0.001  # seconds a thread waits for the interpreter lock before it asks for it (see above)
TEMPORARY_STATE = "state.sqlite"  # the file's name in the temporary folder of --workers N without --state


@dataclass(frozen=True)
class Ready:
    """A worker that has built its app and waits for requests."""

    number: int  # 1..N, in the order the workers started
    pid: int
    lines: list[str]  # what it would announce


def available() -> bool:
    """Whether granian can serve here: installed, on a system whose processes fork (Linux)."""
    return (
        sys.platform.startswith("linux")
        and multiprocessing.get_start_method() == "fork"
        and importlib.util.find_spec("granian") is not None
    )


def _first_lines(ready: list[Ready]) -> str:
    return "\n".join(ready[0].lines)


def serve(
    build: Build,
    host: str,
    port: int,
    threads: int,
    announce: Callable[[str], None],
    workers: int = 1,
    started: Callable[[list[Ready]], str] = _first_lines,
) -> int:
    """Serve what ``build`` makes, in ``workers`` processes, until Ctrl-C or SIGTERM; the exit status (2: a
    worker could not start or stopped on its own, having said why). Once every worker is ready,
    ``announce`` gets what ``started`` makes of them (by default the first one's lines). ``OSError``
    when the port cannot be used."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    port = _usable_port(host, port)
    url = f"http://{host}:{port}"
    # One message per worker, whole: a packet socket never mixes two workers' messages, whatever their size.
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    numbers = multiprocessing.Value("i", 0)  # shared with the forked workers: each takes the next number
    ready = threading.Event()

    def load() -> Any:  # in a worker, forked from this process
        # The worker inherits this process's handlers, granian's, which only take note of a signal (in
        # a copy of its server): stopped while it builds, the worker would go on and the stop wait for
        # it forever. Until granian sets the worker's own (once the app is built), a signal ends it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        reader.close()
        _die_with(parent)
        sys.setswitchinterval(SWITCH_INTERVAL)
        with numbers.get_lock():
            numbers.value += 1
            number = int(numbers.value)
        try:
            app, lines = build(url, number)
        except BaseException:  # build has said why on stderr
            writer.send(_FAILED)
            os._exit(2)
        writer.send(_READY + json.dumps({"number": number, "pid": os.getpid(), "lines": lines}).encode())
        writer.close()
        return Turns(app)  # the threads take turns at the mock's Python (server/turns.py)

    def watch() -> None:  # in this process: announce once every worker listens
        found = _read_ready(reader, workers)
        if found and _answers(host, port):
            ready.set()
            announce(started(sorted(found, key=lambda worker: worker.number)))

    server = Server(
        "mockserver",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        log_enabled=False,
        respawn_failed_workers=False,
    )
    threading.Thread(target=watch, name="mockserver-ready", daemon=True).start()
    try:
        server.serve(target_loader=load, wrap_loader=False)
    except SystemExit:  # granian's answer to a worker that ended on its own
        if ready.is_set():
            print("mockserver: error: a worker process of the server stopped unexpectedly", file=sys.stderr)
        return 2
    finally:
        writer.close()  # a watcher still waiting reads the end of the socket
    announce("mockserver stopped")
    return 0


@contextmanager
def shared_state(settings: Settings) -> Iterator[Settings]:
    """The settings ``settings.workers`` workers share a state with, ready for them (in this process).

    - **A SQLite file** (``--state FILE``): this process takes the file's lock and holds it until it
      ends, so a second ``mockserver serve`` on the file is refused as before, while the workers,
      which die with this process, open the file without it. ``kill -9`` of this process frees the
      file (the system drops the lock) and the port (the workers die with it).
    - **No ``--state``**: the workers share a SQLite file in a new temporary folder, which is removed
      when the mock stops (Ctrl-C, SIGTERM, a failed start). After ``kill -9`` of this process the
      folder (``mockserver-workers-*`` in the system's temporary directory) is left behind, as
      nothing runs to remove it; it holds only that run's state.
    - **PostgreSQL** (``--state postgresql://``): nothing to hold; the database orders the writes.

    One worker (the default) keeps its state to itself as before: the settings come back unchanged.
    ``StateFileError`` when the file is in use.
    """
    if settings.workers <= 1 or settings.state_url is not None:
        yield settings
        return
    folder: str | None = None
    path = settings.state
    if path is None:
        folder = tempfile.mkdtemp(prefix="mockserver-workers-")
        path = Path(folder) / TEMPORARY_STATE
    held: int | None = None
    try:
        from mockserver.storage.sqlite_file import hold

        held = hold(path, fresh=settings.fresh)  # the layout, and --fresh, applied once here
        yield replace(settings, state=path)
    finally:
        if held is not None:
            os.close(held)  # the lock goes with it
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _usable_port(host: str, port: int) -> int:
    """``port``, or a free one for 0; ``OSError`` (as a listening server would raise) when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As granian binds: connections of an ended server waiting out TIME_WAIT do not hold the port
        # (on Linux a listening socket still does).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when its parent ends (Linux), and end now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(2)


def _read_ready(reader: socket.socket, workers: int, timeout: float = 120.0) -> list[Ready]:
    """Every worker's message once all ``workers`` have sent one; [] when one could not start (or some
    said nothing in time)."""
    found: list[Ready] = []
    deadline = time.monotonic() + timeout
    while len(found) < workers:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([reader], [], [], left)[0]:
            return []
        message = reader.recv(1 << 20)
        if not message.startswith(_READY):  # _FAILED, or the end of the socket
            return []
        data = json.loads(message[len(_READY) :])
        found.append(Ready(int(data["number"]), int(data["pid"]), list(data["lines"])))
    return found


def _answers(host: str, port: int, timeout: float = 30.0) -> bool:
    """Whether the port accepts a connection within ``timeout`` seconds."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((target, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.005)
    return False
