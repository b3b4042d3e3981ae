"""``BackgroundServer`` (serving an app on a thread in tests): it stops cleanly whatever is still open."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import requests

from mockserver import BackgroundServer, Settings, create_app
from mockserver.resources import bundled_api_keys


def test_stopping_right_after_requests_leaves_no_thread_failing() -> None:
    # The stop used to close the sockets while the loop and the workers still used them; pytest
    # reports the "Bad file descriptor" this raised in their threads as an error of this test.
    app = create_app(Settings(api_keys=bundled_api_keys()))
    for _ in range(25):
        with BackgroundServer(app) as server:
            assert requests.delete(f"{server.url}/api/governance/access-profiles/1", timeout=10).status_code == 401
        keep_alive = requests.Session()
        with BackgroundServer(app) as server:
            assert keep_alive.get(f"{server.url}/api/governance/access-profiles/1", timeout=10).status_code == 401
        keep_alive.close()


def test_stopping_with_a_client_still_connected_leaves_no_spooled_answer_open() -> None:
    """waitress spools an answer over 1 MiB to a temporary file; a keep-alive client still holds the
    connection when the server stops, and that file must be closed with it, not left to the garbage
    collector (whose ResourceWarning then fails whichever test happens to be running)."""
    big = b"x" * (3 * 1024 * 1024)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(big)))])
        return [big]

    client = requests.Session()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = BackgroundServer(app).start()
        answer = client.get(server.url, stream=True, timeout=5)
        assert answer.raw.read(1024) == b"x" * 1024  # the rest waits in the server's buffer
        server.stop()  # while the client still holds the connection
        gc.collect()
    answer.close()
    client.close()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
