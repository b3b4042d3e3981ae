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
- **One thread for what does not wait.** The worker serves the app through granian's RSGI interface
  (``server/rsgi.py``): reads (and every request while the state is in memory) run on the worker's
  event loop, one after the other on one thread; writes to a state file, a shared state's requests
  and delayed answers (``Prefer: delay``, ``--latency``) run on ``threads`` threads (8), so that many
  delayed answers wait at once, as on waitress. On granian's WSGI interface every request ran on one
  of its threads, and each took the interpreter lock to build its environ: under load the lock
  changed threads at every request, and 8 threads served less than 1 (GET one, wrk -t1 -c10,
  alternating rounds: 2,704 req/s and p99 17.7 ms at 8 threads against 3,731 and 6.9 ms at 1; RSGI
  with the loop serves between the two, with 1 thread's p99). The threads and the loop take turns at
  the mock's Python (``turns.Turns``), and the worker sets a 1 ms switch interval
  (``SWITCH_INTERVAL``), which keeps a thread that wants the lock from waiting 5 ms for it.
  granian's Rust side runs on one thread too (``runtime_mode=st``): with its default two, the Rust
  thread and the loop wanted the interpreter lock in turn, and RSGI served less than 8 WSGI threads
  (2,063 req/s against 2,276 in one run; with one Rust thread, 3,246 against 2,912 in another).
- **``Prefer: fault=empty``** is exact here too: the worker shuts the connection unanswered (``rsgi``).
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

from mockserver.server.rsgi import Rsgi
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
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
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
        # The loop and the threads take turns at the mock's Python (server/turns.py, server/rsgi.py).
        return Rsgi(Turns(app), threads, inline_of(app), max_body_of(app))

    def watch() -> None:  # in this process: announce once every worker listens
        found = _read_ready(reader, workers)
        if found and _answers(host, port):
            ready.set()
            announce(started(sorted(found, key=lambda worker: worker.number)))

    server = Server(
        "mockserver",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        blocking_threads=1,  # RSGI's only setting: the app's own threads are rsgi.Rsgi's
        runtime_mode=RuntimeModes.st,  # the Rust side on one thread too: RSGI served 25% more than with two
        loop=Loops.uvloop if importlib.util.find_spec("uvloop") else Loops.asyncio,
        websockets=False,
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


def inline_of(app: Any) -> str:
    """Which requests of ``app`` run on the event loop (``rsgi.Rsgi``'s ``inline``)."""
    mock = app.extensions["mockserver"]
    persistence = mock.store.persistence
    if persistence is None:
        return "all"
    if not persistence.shared:
        return "reads"
    # Shared: a read's catch-up asks the engine. A local file answers without waiting (its reads run on
    # the loop, as one process's do); a server is a round trip (every request on a thread).
    return "none" if persistence.reads_wait else "shared-reads"


def max_body_of(app: Any) -> int:
    """The most of a request's body the worker reads: the app refuses more, and its journal keeps less."""
    return int(app.extensions["mockserver"].settings.max_body_bytes)
