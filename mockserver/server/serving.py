"""Running an app under waitress: in the foreground (CLI) or on a background thread (tests); and the
answers whose breaking depends on the server: ``Prefer: fault=empty`` (``no_answer``) and
``fault=truncate`` (``half_answer``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from waitress import wasyncore
from waitress.server import create_server


class BackgroundServer:
    """A waitress server on a background thread; ``port=0`` picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> None:
        self._server = create_server(app, host=host, port=port, threads=threads, ident="mockserver")
        self.host = host
        self.port: int = self._server.effective_port
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mockserver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        # The workers finish what they serve, then the loop closes the sockets from its own thread.
        # Closing them from this thread raced with the loop and the workers ("Bad file descriptor").
        self._server.task_dispatcher.shutdown()
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        server = self._server
        while not self._stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        # A connection a client still keeps open may hold a body or an answer that waitress spooled to a
        # temporary file (past its overflow sizes); close_all closes sockets only, so close those first.
        for channel in list(server.active_channels.values()):
            for request in [channel.request, *channel.requests]:
                if request is not None:
                    request.close()
            channel.handle_close()
        wasyncore.close_all(server._map)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: Any, host: str, port: int, threads: int, announce: Any = print) -> None:
    """Serve until Ctrl-C (or SIGTERM through KeyboardInterrupt), then close the socket cleanly."""
    server = create_server(app, host=host, port=port, threads=threads, ident="mockserver")
    try:
        # Inside the try: a client may stop us as soon as it reads this line.
        announce(f"mockserver listening on http://{host}:{server.effective_port}  (Ctrl-C to stop)")
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        announce("mockserver stopped")


def no_answer(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A WSGI answer of which the server sends nothing at all, then closes the connection.

    waitress closes the connection, having written nothing, when the answer's first part raises
    ``ClientDisconnected`` before ``start_response`` was called. On granian the worker never asks for
    that part: it finds the fault in the environ and shuts the connection itself (``server/rsgi.py``).
    """
    return _disconnected()


def half_answer(
    status: str, headers: list[tuple[str, str]], body: bytes, environ: dict[str, Any], start_response: Any
) -> Iterator[bytes]:
    """The status line, the headers and the first half of the body; then the connection breaks.

    On granian the worker takes the first part (the half) and breaks the connection itself, a moment
    after it (``rsgi.HALF_ANSWER_PAUSE``: hyper writes what it holds while it waits for more of the body).
    """
    start_response(status, headers)
    return _half(body)


def _half(body: bytes) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    raise ConnectionAbortedError("fault=truncate: closing the connection in the middle of the body")


def _disconnected() -> Iterator[bytes]:
    from waitress.channel import ClientDisconnected

    raise ClientDisconnected("fault=empty: closing the connection without an answer")
    yield b""  # a generator: it fails only when the server asks for its first part
