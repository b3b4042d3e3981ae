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
        self._thread = threading.Thread(target=self._server.run, name="mockserver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        # Close the sockets from the server's own loop thread (closing them from here races with
        # it); with its map empty, the loop ends.
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(timeout=5)
        server.task_dispatcher.shutdown()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: Any, host: str, port: int, threads: int, announce: Any = print) -> None:
    """Serve until Ctrl-C (or SIGTERM through KeyboardInterrupt), then close the socket cleanly."""
    server = create_server(app, host=host, port=port, threads=threads, ident="mockserver")
    announce(f"mockserver listening on http://{host}:{server.effective_port}  (Ctrl-C to stop)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        announce("mockserver stopped")
