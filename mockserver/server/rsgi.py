"""The mock's WSGI app on granian's RSGI interface: ordinary requests run on the worker's event loop,
one after the other on one thread; requests that wait run on ``--threads`` threads.

**Why.** On granian's WSGI interface every request runs on one of its blocking threads, and each thread
takes the interpreter lock to build the request's environ before the app runs. Under load the requests
spread over all the threads, and the lock changed threads at every request: 8 threads served about 30%
less than 1 thread did, with twice its p99 (``make bench``'s "servers side by side"). But one thread
would make delayed answers wait one after the other. Here one thread runs every request that does not
wait, and a request that waits runs on a thread of its own, so delays still wait at once:

- **On the loop** (``inline``): reads, and with the state in memory every request; they never wait.
  With a state shared on a SQLite file (``--workers``), the default state's API reads: their catch-up
  with the other workers is a query of the file, which never waits for a writer (WAL).
- **On the writes' thread:** writes to one process's state file (a save waits for its sync), one after
  the other: they take the store's lock in turn anyway, and on threads of their own their Python after
  the sync ran beside the loop's reads (GET one beside 4 writers: 2.3 times its p50 alone; 1.7 times
  with this thread). A write that would wait out a delay runs again on a thread, as on the loop.
- **On a thread:** the requests of a state shared
  on PostgreSQL (round trips), a shared state's sessions and the mock's own routes (they ask the
  engine more), and any request that turns out to wait: a catch-up that finds a write holding the
  store's lock, ``Prefer: delay``, ``--latency`` or a
  session's chaos latency. The app finds that out before it has changed anything and raises
  ``turns.Rerun`` (the store does the same before it would wait for its lock or its disk), and the
  request runs again, from the start, on a thread.

The threads and the loop take turns at the mock's Python (``server/turns.py``).

**Bodies** are read up to the size limit (``Settings.max_body_bytes``, 1 MiB) and a chunk; the app refuses larger
ones by their ``Content-Length``. A body sent in chunks, with no length, is counted to its end (none of
it kept past the limit) and given to the app with its length, as waitress does, so that it too is
refused with a 413 that names its size, not a 400 for JSON cut short.

**Faults, exactly:** ``Prefer: fault=empty`` shuts the connection before a byte of the answer is sent;
``fault=truncate`` sends the status, the headers and half the body, then shuts it. granian's RSGI
interface has no call that closes a connection unanswered (an app that answers nothing gets granian's
own 500), so the worker shuts the connection's socket itself: found among the process's descriptors
by its two addresses (Linux's ``/proc``, as granian itself runs here only on Linux).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mockserver.server import turns
from mockserver.server.turns import FAULT_KEY

HALF_ANSWER_PAUSE = 0.1  # seconds hyper gets to write the half of a fault=truncate answer
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
DRAIN_LIMIT = 1 << 30  # a body sent without a length is counted to its end, up to this (waitress's default bound)
Answer = tuple[int, list[tuple[str, str]], bytes | Iterable[bytes]]


class Rsgi:
    """An RSGI app serving the WSGI ``app`` (see the module's docstring).

    ``inline``: ``"all"`` (the state in memory: no request waits on a disk or a database), ``"reads"``
    (a state file: writes sync), ``"shared-reads"`` (a state shared on a file: the default state's API
    reads, whose catch-up is a query of the file that never waits) or ``"none"`` (a state shared on a
    server: every request may wait on it).
    ``max_body``: the most of a request's body that is read (the app refuses larger ones).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], threads: int, inline: str, max_body: int) -> None:
        self.app = app
        self.threads = threads
        self.inline = inline
        self.max_body = max_body
        self._pool: ThreadPoolExecutor | None = None
        self._writes: ThreadPoolExecutor | None = None
        self._base = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": "mockserver (granian RSGI)",
            "wsgi.errors": sys.stderr,
            "wsgi.input_terminated": True,
            "wsgi.multiprocess": False,
            "wsgi.multithread": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }

    # -- granian's hooks ---------------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        turns.serve_inline_here()  # granian calls this on the loop's thread
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mockserver")
        if self.inline == "reads":  # one process's state file: its writes, one after the other on a thread
            self._writes = ThreadPoolExecutor(1, "mockserver-writes", initializer=turns.serve_writes_here)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for pool in (self._pool, self._writes):
            if pool is not None:
                pool.shutdown(wait=False)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":  # granian runs without websockets; nothing else comes
            return
        body, size = await self._body(scope, proto)
        loop = asyncio.get_running_loop()
        for place in self._places(scope):
            environ = self._environ(scope, body, size)
            try:
                if place is None:
                    answer = self._call(environ)
                else:
                    answer = await loop.run_in_executor(place, self._call, environ)
                break
            except turns.Rerun:  # it would wait there: again, from the start, in the next place
                continue
        else:  # a thread of --threads never gives a request up
            raise AssertionError("no place ran the request")
        status, headers, chunks = answer
        fault = environ.get(FAULT_KEY)
        if fault == "empty":
            _shut(scope)
            return
        if fault == "truncate":
            stream = proto.response_stream(status, headers)
            await stream.send_bytes(next(iter(chunks)))
            await asyncio.sleep(HALF_ANSWER_PAUSE)  # hyper writes what it holds while it waits for more
            _shut(scope)
            return
        proto.response_bytes(status, headers, chunks if isinstance(chunks, bytes) else b"".join(chunks))

    def _places(self, scope: Any) -> list[ThreadPoolExecutor | None]:
        """Where the request runs, in order, each next one if it would wait in the one before (``None``:
        the loop). The last, a thread of ``--threads``, runs whatever comes."""
        assert self._pool is not None
        if self.inline == "all":
            return [None, self._pool]
        if scope.method not in SAFE:
            return [self._pool] if self._writes is None else [self._writes, self._pool]
        # With a shared state on a file, the default state's API reads (the mock's own routes and a
        # session ask the engine more).
        if self.inline == "reads" or (self.inline == "shared-reads" and not scope.path.startswith("/__")):
            return [None, self._pool]
        return [self._pool]

    # -- the WSGI side -----------------------------------------------------------------------------

    def _call(self, environ: dict[str, Any]) -> Answer:
        """The app's answer: status, headers and body (whole, unless a fault keeps it as the app gave it)."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [int(status[:3]), headers]

        chunks = self.app(environ, start_response)
        if environ.get(FAULT_KEY) is None:
            try:
                joined = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            return started[0], started[1], joined
        # fault=empty: the app started no answer, and none goes out (see __rsgi__)
        return (started[0], started[1], chunks) if started else (0, [], chunks)

    def _environ(self, scope: Any, body: bytes, size: int | None = None) -> dict[str, Any]:
        """The WSGI environ of an RSGI request, as granian's WSGI interface makes it; ``size``: the length
        of a body sent without one."""
        environ = dict(self._base)
        server, _, port = scope.server.rpartition(":")
        environ.update(
            {
                "REQUEST_METHOD": scope.method,
                # WSGI wants the decoded path's bytes as Latin-1; RSGI gives the path decoded as UTF-8.
                "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
                "QUERY_STRING": scope.query_string,
                "SERVER_NAME": server.strip("[]"),
                "SERVER_PORT": port,
                "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
                "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
                "wsgi.url_scheme": scope.scheme,
                "wsgi.input": io.BytesIO(body),
            }
        )
        for name, value in scope.headers.items():
            if name == "content-type":
                key = "CONTENT_TYPE"
            elif name == "content-length":
                key = "CONTENT_LENGTH"
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        if size is not None:  # hyper took the chunks apart: the app sees a body of this length, as on waitress
            environ["CONTENT_LENGTH"] = str(size)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return environ

    async def _body(self, scope: Any, proto: Any) -> tuple[bytes, int | None]:
        """The request's body, at most ``max_body`` and a chunk (the app says what is too large), and
        for a body sent without a length (chunked) its size, as waitress gives it: read to its end
        (up to ``DRAIN_LIMIT``), keeping none past the bound."""
        headers = scope.headers
        sized = "content-length" in headers
        if not sized and "transfer-encoding" not in headers:
            return b"", None
        if sized and int(headers["content-length"]) <= self.max_body:
            return await proto(), None
        parts: list[bytes] = []
        size = 0
        async for chunk in proto:
            if size <= self.max_body:
                parts.append(chunk)
            size += len(chunk)
            if size > self.max_body and (sized or size > DRAIN_LIMIT):
                break
        return b"".join(parts), None if sized else size


def _shut(scope: Any) -> None:
    """Shut the request's connection (both ways) without writing to it."""
    local, peer = scope.server, scope.client
    for name in os.listdir("/proc/self/fd"):
        try:
            copy = os.dup(int(name))
        except OSError:  # gone meanwhile
            continue
        try:
            found = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            if found.type == socket.SOCK_STREAM and _address(found.getpeername()) == peer:
                if _address(found.getsockname()) == local:
                    found.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:  # not connected: a listening socket, a socket pair's end
            continue
        finally:
            found.close()


def _address(address: Any) -> str:
    """An address as RSGI writes it: ``host:port``."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
