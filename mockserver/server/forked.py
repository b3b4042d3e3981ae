"""`mockserver serve` on granian (the default on Linux): a Rust HTTP server, the app in one worker process.

`make bench` ("servers side by side") measures the candidates: granian serves the mock several times as
fast as waitress on this project's machine, because the HTTP work leaves Python. Where it cannot run
(no fork, or granian missing), `mockserver serve` falls back to waitress (``--server auto``, the default).

- **The worker builds the app.** granian forks one worker from this process. The worker calls
  ``build``: it opens the state file (so it holds the file's lock), starts its own threads (log
  writer, reloader), and sends this process, through a pipe, the lines to announce. This process
  announces them once the port answers, so a client that reads "listening on" can connect at once.
- **It dies with this process.** Linux's parent-death signal kills the worker when this process
  ends, even by ``kill -9``: no worker is left holding the port or the state file.
- **Ctrl-C and SIGTERM** reach granian, which stops the worker gracefully; the worker writes its
  queued log lines as it exits.
- **The tail.** granian runs the app on ``threads`` blocking threads, which take turns at the
  interpreter lock. A thread that waits for the lock asks the holder to let go only after the switch
  interval (5 ms by default), so under load a request waited several intervals: p99 30-60 ms against
  1 thread's 5-20 ms in one run (wrk -t1 -c10, six alternating rounds). The worker sets a 1 ms interval
  (``SWITCH_INTERVAL``): p99 9-24 ms in the same run, for about a tenth of the throughput. One thread
  would do better still, but a delayed answer (``Prefer: delay``, ``--latency``) holds its thread while
  it waits, so ``--threads`` also says how many answers can wait at once, as on waitress.
- **``Prefer: fault=empty``** is exact here too: see ``serving.no_answer``.
- **Only where processes fork** (Linux). The pytest plugin's in-thread server is always waitress.
"""

from __future__ import annotations

import ctypes
import importlib.util
import multiprocessing
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

Build = Callable[[str], tuple[Any, list[str]]]  # url -> (the WSGI app, the lines to announce)
_END = b"\0"  # ends the worker's message on the pipe; an empty message means it could not start
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
SWITCH_INTERVAL = 0.001  # seconds a thread waits for the interpreter lock before it asks for it (see above)


def available() -> bool:
    """Whether granian can serve here: installed, on a system whose processes fork (Linux)."""
    return (
        sys.platform.startswith("linux")
        and multiprocessing.get_start_method() == "fork"
        and importlib.util.find_spec("granian") is not None
    )


def serve(build: Build, host: str, port: int, threads: int, announce: Callable[[str], None]) -> int:
    """Serve what ``build`` makes until Ctrl-C or SIGTERM; the exit status (2: the worker could not
    start or stopped on its own, having said why). ``OSError`` when the port cannot be used."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    port = _usable_port(host, port)
    url = f"http://{host}:{port}"
    reader, writer = os.pipe()
    parent = os.getpid()
    started = threading.Event()

    def load() -> Any:  # in the worker, forked from this process
        os.close(reader)
        _die_with(parent)
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            app, lines = build(url)
        except BaseException:  # build has said why on stderr
            os.write(writer, _END)
            os._exit(2)
        os.write(writer, "\n".join(lines).encode() + _END)
        os.close(writer)
        return app

    def watch() -> None:  # in this process: announce once the worker listens
        message = _read_message(reader)
        if message and _answers(host, port):
            started.set()
            announce(message)

    server = Server(
        "mockserver",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=threads,
        http=HTTPModes.http1,
        log_enabled=False,
        respawn_failed_workers=False,
    )
    threading.Thread(target=watch, name="mockserver-ready", daemon=True).start()
    try:
        server.serve(target_loader=load, wrap_loader=False)
    except SystemExit:  # granian's answer to a worker that ended on its own
        if started.is_set():
            print("mockserver: error: the server's worker process stopped unexpectedly", file=sys.stderr)
        return 2
    finally:
        os.close(writer)  # a watcher still waiting reads the end of the pipe
    announce("mockserver stopped")
    return 0


def _usable_port(host: str, port: int) -> int:
    """``port``, or a free one for 0; ``OSError`` (as a listening server would raise) when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
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


def _read_message(reader: int, timeout: float = 120.0) -> str:
    """The worker's message, or "" when it could not start (or said nothing in time)."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(_END):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([reader], [], [], left)[0]:
            return ""
        chunk = os.read(reader, 65536)
        if not chunk:
            return ""
        data += chunk
    return data[:-1].decode()


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
