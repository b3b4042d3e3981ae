"""Running an app under waitress: in the foreground (CLI) or on a background thread (tests)."""

from __future__ import annotations

import threading
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
