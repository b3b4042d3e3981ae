"""Isolated sessions over HTTP, against one served mock (``mockserver serve`` in its own process)."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CANONICAL
from serving import serve

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer sessions-test"}
HEADER = "X-Mockserver-Session"


def in_session(name: str | None) -> requests.Session:
    client = requests.Session()
    client.headers.update(AUTH)
    if name is not None:
        client.headers[HEADER] = name
    return client


def listed(client: requests.Session, url: str) -> list[dict[str, Any]]:
    body = client.get(f"{url}{CANONICAL}?limit=100", timeout=10).json()
    return body["access_profiles"]  # type: ignore[no-any-return]


def work(url: str, name: str, start: threading.Barrier) -> dict[str, Any]:
    """One client's day: create five profiles, rename them, delete two; what it saw along the way."""
    client = in_session(name)
    start.wait(timeout=30)
    ids = []
    for k in range(5):
        created = client.post(f"{url}{CANONICAL}", json={"name": f"{name} profile {k}"}, timeout=10)
        assert created.status_code == 201, created.text
        ids.append(created.json()["access_profile"]["id"])
    for profile_id in ids:
        renamed = client.put(
            f"{url}{CANONICAL}/{profile_id}", json={"name": f"{name} renamed {profile_id}"}, timeout=10
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["access_profile"]["version"] == 2
    for profile_id in ids[:2]:
        assert client.delete(f"{url}{CANONICAL}/{profile_id}", timeout=10).status_code == 200
    missing = [client.get(f"{url}{CANONICAL}/{i}", timeout=10).status_code for i in ids[:2]]
    return {"ids": ids, "names": [p["name"] for p in listed(client, url)], "missing": missing}


def test_eight_clients_in_eight_sessions_never_see_each_other() -> None:
    with serve() as server:
        url = server.url
        default = in_session(None)
        fixtures = [p["name"] for p in listed(default, url)]
        state_before = default.get(f"{url}/__mock/state", timeout=10).json()
        clients = [f"client-{n}" for n in range(8)]
        start = threading.Barrier(len(clients))
        with ThreadPoolExecutor(len(clients)) as pool:
            seen = dict(zip(clients, pool.map(lambda name: work(url, name, start), clients), strict=True))

        for name, saw in seen.items():
            # Its own ids from its own counter: no other client took one in between.
            assert saw["ids"] == [11, 12, 13, 14, 15], name
            assert saw["missing"] == [404, 404]
            assert saw["names"] == [*fixtures, f"{name} renamed 13", f"{name} renamed 14", f"{name} renamed 15"]
        assert default.get(f"{url}/__mock/state", timeout=10).json() == state_before  # the default state

        sessions = default.get(f"{url}/__mock/sessions", timeout=10).json()["sessions"]
        assert [(s["name"], s["records"]["profiles"]) for s in sessions] == [(name, 13) for name in clients]

        # A reset in one session leaves the others as they were.
        others = {name: in_session(name).get(f"{url}/__mock/state", timeout=10).json() for name in clients[1:]}
        reset = in_session("client-0").post(f"{url}/__mock/reset", timeout=10)
        assert reset.json() == {"message": "state reset to the loaded fixtures", "profiles": 10}
        assert [p["name"] for p in listed(in_session("client-0"), url)] == fixtures
        for name, state in others.items():
            assert in_session(name).get(f"{url}/__mock/state", timeout=10).json() == state, name

        # The same through a path prefix, for a client that only takes a base URL.
        prefixed = default.get(f"{url}/__session/client-3{CANONICAL}?limit=100", timeout=10).json()
        assert [p["name"] for p in prefixed["access_profiles"]] == seen["client-3"]["names"]

        bad = in_session("not a name").get(f"{url}{CANONICAL}", timeout=10)
        assert bad.status_code == 400
        assert bad.json() == {
            "is_bifrost_error": False,
            "status_code": 400,
            "error": {
                "type": "invalid_request",
                "message": "'not a name' is not a session name: use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or a digit",
                "param": HEADER,
            },
            "extra_fields": {},
        }


def test_the_bound_and_the_idle_expiry_are_enforced_with_clear_errors() -> None:
    with serve("--max-sessions", "2", "--session-ttl", "1") as server:
        url = server.url
        first, second, third = in_session("first"), in_session("second"), in_session("third")
        assert first.post(f"{url}{CANONICAL}", json={"name": "First's"}, timeout=10).status_code == 201
        assert second.get(f"{url}{CANONICAL}", timeout=10).status_code == 200
        refused = third.get(f"{url}{CANONICAL}", timeout=10)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["type"] == "too_many_requests"
        assert refused.json()["error"]["message"].startswith(
            "this mock holds its maximum of 2 sessions (--max-sessions); delete one with DELETE /__mock/sessions/NAME"
        )
        time.sleep(1.3)  # both sessions are now idle for longer than --session-ttl 1
        expired = first.get(f"{url}{CANONICAL}", timeout=10)
        assert expired.status_code == 410
        assert expired.json()["error"]["message"].startswith(
            "session 'first' expired after 1 s without requests (--session-ttl) and its state was dropped at "
        )
        assert third.get(f"{url}{CANONICAL}", timeout=10).status_code == 200  # there is room again
        again = listed(first, url)
        assert len(again) == 10 and "First's" not in [p["name"] for p in again]


def test_with_a_state_file_sessions_survive_a_restart_and_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    names = ("alpha", "beta")

    def states(url: str) -> dict[str, Any]:
        found = {name: in_session(name).get(f"{url}/__mock/state", timeout=10).json() for name in names}
        found["snapshots"] = in_session("alpha").get(f"{url}/__mock/snapshots", timeout=10).json()
        found["sessions"] = sorted(s["name"] for s in in_session(None).get(f"{url}/__mock/sessions").json()["sessions"])
        return found

    with serve("--state", path) as server:
        for name in names:
            client = in_session(name)
            assert client.post(f"{server.url}{CANONICAL}", json={"name": f"{name}'s"}, timeout=10).status_code == 201
            client.put(f"{server.url}{CANONICAL}/1", json={"description": f"edited in {name}"}, timeout=10)
        assert in_session("alpha").post(f"{server.url}/__mock/snapshots/kept", timeout=10).status_code == 201
        before = states(server.url)
        assert server.stop(signal.SIGTERM) == 0

    with serve("--state", path) as server:
        assert states(server.url) == before
        created = in_session("beta").post(f"{server.url}{CANONICAL}", json={"name": "After a restart"}, timeout=10)
        assert created.json()["access_profile"]["id"] == 12  # its ids continue
        before = states(server.url)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)

    with serve("--state", path) as server:
        assert states(server.url) == before
        versions = in_session("alpha").get(f"{server.url}{CANONICAL}/1/versions", timeout=10).json()["versions"]
        assert [v["version"] for v in versions][-2:] == [3, 4]
        assert in_session("alpha").post(f"{server.url}/__mock/snapshots/kept/restore", timeout=10).status_code == 200
