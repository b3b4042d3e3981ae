"""`mockserver serve --server granian` (the default on Linux): the app in a forked worker, and what that
worker adds: it owns the state file, dies with its parent, and starts or fails as one process would."""

from __future__ import annotations

import os
import re
import signal
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import requests
from conftest import CANONICAL
from serving import Served, run_mockserver, serve

from mockserver.server import forked

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not forked.available(), reason="granian serves only where processes fork (Linux)"),
]
AUTH = {"Authorization": "Bearer granian"}
LINE = re.compile(r"^\d\d:\d\d:\d\d (GET|PUT|POST|DELETE) (\S+) ")


def on_granian(*args: str) -> AbstractContextManager[Served]:
    return serve("--server", "granian", "--no-watch", *args)


def worker_of(server: Served) -> int:
    """The pid of the granian worker under ``server``'s process."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "State:\tZ" in status.read_text():
            return True  # dead, waiting to be reaped by its (dead) parent's reaper
        time.sleep(0.02)
    return False


def test_it_serves_the_mock_announces_it_and_writes_every_line_on_sigterm(tmp_path: Path) -> None:
    with on_granian("--state", str(tmp_path / "s.sqlite")) as server:
        output = "".join(server.lines)
        assert "Inspector" in output and "Fixtures" in output  # the banner, after the listening line
        with requests.Session() as session:
            for n in range(300):
                assert session.get(f"{server.url}{CANONICAL}?limit=1&offset={n}", headers=AUTH).status_code == 200
            changed = session.put(f"{server.url}{CANONICAL}/1", json={"description": "kept"}, headers=AUTH)
            assert changed.status_code == 200
        assert server.stop(signal.SIGTERM) == 0
    lines = [line for line in server.lines if LINE.match(line)]
    assert [int(line.split("offset=")[1].split()[0]) for line in lines[:300]] == list(range(300))
    assert "mockserver stopped" in "".join(server.lines)
    with on_granian("--state", str(tmp_path / "s.sqlite")) as again:  # the write was saved
        profile = requests.get(f"{again.url}{CANONICAL}/1", headers=AUTH, timeout=5).json()["access_profile"]
        assert profile["description"] == "kept"
        assert again.stop(signal.SIGINT) == 0  # Ctrl-C


def test_kill_9_of_mockserver_takes_its_worker_and_frees_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with on_granian("--state", str(path)) as server:
        worker = worker_of(server)
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Acknowledged"}, headers=AUTH, timeout=5)
        assert created.status_code == 201
        second = run_mockserver("serve", "--port", "0", "--state", str(path))
        assert second.returncode == 2 and f"is in use by another mockserver (pid {worker})" in second.stderr
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        assert gone(worker), "the worker outlived mockserver"
    with on_granian("--state", str(path)) as again:
        new_id = created.json()["access_profile"]["id"]
        assert requests.get(f"{again.url}{CANONICAL}/{new_id}", headers=AUTH, timeout=5).status_code == 200


def test_faults_and_delays_on_granian() -> None:
    with on_granian() as server:
        url = f"{server.url}{CANONICAL}/1"
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f"{url}?__fault=truncate", headers=AUTH, timeout=5)
        # fault=empty: nothing at all is sent (tests/test_serving.py reads the socket).
        with pytest.raises(requests.ConnectionError):
            requests.get(url, headers={**AUTH, "Prefer": "fault=empty"}, timeout=5)
        assert requests.get(url, headers=AUTH, timeout=5).status_code == 200
        # CORS on granian: tests/test_serving.py, on each server.
        slow = time.monotonic()
        assert requests.get(url, headers={**AUTH, "Prefer": "delay=300"}, timeout=5).status_code == 200
        assert time.monotonic() - slow >= 0.3


def test_a_start_that_fails_in_the_worker_says_why_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"access_profiles": [{"id": 1}]}', encoding="utf-8")
    result = run_mockserver("serve", "--port", "0", "--server", "granian", "--fixtures", str(broken))
    assert result.returncode == 2
    assert f"mockserver: error: {broken}: access_profiles[0]: name: this field is required" in result.stderr
    assert "listening" not in result.stdout
