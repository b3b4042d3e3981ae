"""``BackgroundServer`` (serving an app on a thread in tests): it stops cleanly whatever is still open."""

from __future__ import annotations

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
