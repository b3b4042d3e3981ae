"""`mockserver serve --workers N`: N granian workers on one port over one shared state, as users run it.

Real processes throughout: the parent holds the SQLite file (or a temporary one) for its workers, the
workers share it and see each other's writes, and every worker ends with the parent, ``kill -9``
included.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CANONICAL
from serving import ROOT, Served, run_mockserver, serve

from mockserver.server import forked

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not forked.available(), reason="--workers runs on granian, only where processes fork (Linux)"),
]
AUTH = {"Authorization": "Bearer workers"}
WORKERS_ROW = re.compile(r"^  Workers +2 processes on one port, one state: (\S+), (\S+)$", re.M)


def on_workers(*args: str) -> AbstractContextManager[Served]:
    return serve("--workers", "2", "--no-watch", *args, timeout=60)


def workers_of(server: Served) -> list[int]:
    """The pids of the processes forked by ``server``'s process (its granian workers)."""
    pid = server.process.pid
    return sorted(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        try:
            if "State:\tZ" in status.read_text():
                return True  # dead, waiting for its (dead) parent's reaper
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def until(condition: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    return condition()


def fresh_get(url: str) -> requests.Response:
    """A GET on a new connection: each one may be accepted by either worker."""
    with requests.Session() as session:
        return session.get(url, headers={**AUTH, "Connection": "close"}, timeout=10)


def test_two_workers_serve_one_port_and_each_reads_the_others_writes(tmp_path: Path) -> None:
    with on_workers("--state", str(tmp_path / "s.sqlite"), "--instance", "eu") as server:
        workers = workers_of(server)
        assert len(workers) == 2
        output = "".join(server.lines)
        assert "Inspector" in output and output.count("mockserver listening on") == 1  # one announcement
        assert WORKERS_ROW.search(output).groups() == ("eu-1", "eu-2")  # type: ignore[union-attr]
        # Both processes answer on the one port: the shared journal names the instance of each request.
        for _ in range(40):
            assert fresh_get(f"{server.url}{CANONICAL}?limit=1").status_code == 200

        def instances() -> set[str]:
            journal = fresh_get(f"{server.url}/__mock/journal?operation_id=listAccessProfiles").json()
            return {entry["instance"] for entry in journal["entries"]}

        assert until(lambda: instances() == {"eu-1", "eu-2"}), instances()
        # Read-your-writes: a write acknowledged by one worker is seen at once by whichever reads next.
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Seen by both"}, headers=AUTH, timeout=10)
        assert created.status_code == 201, created.text
        profile_url = f"{server.url}{CANONICAL}/{created.json()['access_profile']['id']}"
        for n in range(1, 13):
            changed = requests.put(profile_url, json={"description": f"change {n}"}, headers=AUTH, timeout=10)
            assert changed.status_code == 200, changed.text
            for _ in range(4):
                read = fresh_get(profile_url).json()["access_profile"]
                assert (read["description"], read["version"]) == (f"change {n}", n + 1)
        listed = fresh_get(f"{server.url}{CANONICAL}?search=Seen%20by%20both").json()
        assert listed["total_count"] == 1
        assert server.stop(signal.SIGTERM) == 0
    assert all(gone(pid) for pid in workers), "a worker outlived SIGTERM"
    assert "mockserver stopped" in "".join(server.lines)


def test_the_file_stays_one_mocks_and_kill_9_of_the_parent_frees_it_and_the_port(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with on_workers("--state", str(path)) as server:
        workers = workers_of(server)
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Acknowledged"}, headers=AUTH, timeout=10)
        assert created.status_code == 201
        for args in ((), ("--workers", "2")):
            second = run_mockserver("serve", "--port", "0", "--state", str(path), *args, timeout=60)
            assert second.returncode == 2, second.stdout + second.stderr
            assert f"is in use by another mockserver (pid {server.process.pid})" in second.stderr
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        assert all(gone(pid) for pid in workers), "a worker outlived mockserver"
    port = server.url.rsplit(":", 1)[1]
    with on_workers("--state", str(path), "--port", port) as again:  # the same file, the same port
        assert again.url == server.url
        profile_id = created.json()["access_profile"]["id"]
        kept = requests.get(f"{again.url}{CANONICAL}/{profile_id}", headers=AUTH, timeout=10)
        assert kept.status_code == 200 and kept.json()["access_profile"]["name"] == "Acknowledged"
        assert again.stop(signal.SIGINT) == 0  # Ctrl-C


def temporary_folder(server: Served) -> Path:
    """The temporary folder the parent made for its workers' state (it holds the file open)."""
    fds = Path(f"/proc/{server.process.pid}/fd")
    for fd in fds.iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        if target.name == forked.TEMPORARY_STATE and target.parent.name.startswith("mockserver-workers-"):
            return target.parent
    raise AssertionError("no temporary state file held by the parent")


def test_without_state_the_workers_share_a_temporary_file_removed_on_sigterm() -> None:
    with on_workers() as server:
        folder = temporary_folder(server)
        assert (folder / forked.TEMPORARY_STATE).exists()
        assert "(a temporary SQLite file; --state FILE keeps it)" in "".join(server.lines)
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Shared for now"}, headers=AUTH, timeout=10)
        assert created.status_code == 201
        profile_url = f"{server.url}{CANONICAL}/{created.json()['access_profile']['id']}"
        assert all(fresh_get(profile_url).status_code == 200 for _ in range(20))
        assert server.stop(signal.SIGTERM) == 0
    assert not folder.exists()


def test_fresh_applies_once_for_all_workers(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with on_workers("--state", str(path)) as server:
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Gone with fresh"}, headers=AUTH, timeout=10)
        assert created.status_code == 201
        assert server.stop(signal.SIGTERM) == 0
    with on_workers("--state", str(path), "--fresh") as again:
        totals = {fresh_get(f"{again.url}{CANONICAL}").json()["total_count"] for _ in range(10)}
        assert totals == {10}  # the fixtures, once, whichever worker answers
        profile_url = f"{again.url}{CANONICAL}/{created.json()['access_profile']['id']}"
        assert fresh_get(profile_url).status_code == 404


def test_workers_need_granian() -> None:
    result = run_mockserver("serve", "--port", "0", "--workers", "2", "--server", "waitress")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mockserver: error: --workers N (more than 1) runs on granian only; leave out --server waitress (or --workers)"
    )


def test_a_start_that_fails_says_why_once_and_leaves_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"access_profiles": [{"id": 1}]}', encoding="utf-8")
    temporary = tmp_path / "tmp"  # where the temporary state goes (TMPDIR), this test's alone
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    result = run_mockserver("serve", "--port", "0", "--workers", "2", "--fixtures", str(broken), env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("access_profiles[0]: name: this field is required") == 1, result.stderr
    assert "listening" not in result.stdout
    assert list(temporary.iterdir()) == []


def test_a_busy_port_is_reported_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_mockserver("serve", "--port", port, "--workers", "2", timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_two_workers_over_postgresql_share_its_state(postgresql: str) -> None:
    info = dict(part.split("=", 1) for part in postgresql.split())
    url = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    with on_workers("--state", url, "--fresh") as server:
        assert len(workers_of(server)) == 2
        assert WORKERS_ROW.search("".join(server.lines))
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "In PostgreSQL"}, headers=AUTH, timeout=10)
        assert created.status_code == 201, created.text
        profile_url = f"{server.url}{CANONICAL}/{created.json()['access_profile']['id']}"
        for n in range(1, 6):
            assert requests.put(profile_url, json={"description": f"v{n}"}, headers=AUTH, timeout=10).status_code == 200
            assert {fresh_get(profile_url).json()["access_profile"]["version"] for _ in range(4)} == {n + 1}
        assert fresh_get(f"{server.url}{CANONICAL}").json()["total_count"] == 11
        assert server.stop(signal.SIGTERM) == 0


def test_each_worker_applies_an_edit_of_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "openapi" / "access-profiles.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with serve("--workers", "2", "--spec", str(spec), timeout=60) as server:
        url = f"{server.url}{CANONICAL}/1"

        def put_three_tags() -> int:
            with requests.Session() as session:
                answer = session.put(url, json={"tags": ["a", "b", "c"]}, headers={**AUTH, "Connection": "close"})
                return answer.status_code

        assert put_three_tags() == 200
        spec.write_text(spec.read_text(encoding="utf-8").replace("maxItems: 50", "maxItems: 2"), encoding="utf-8")
        stat = spec.stat()
        os.utime(spec, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert until(lambda: sum(line.count("spec reloaded") for line in server.lines) == 2)  # once per worker
        assert {put_three_tags() for _ in range(20)} == {400}


@pytest.mark.parametrize("after", [0.5, 1.0, 1.5, 3.0])
def test_sigterm_at_any_moment_of_the_start_leaves_no_temporary_file(tmp_path: Path, after: float) -> None:
    import subprocess
    import sys

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--workers", "2", "--no-watch"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temporary)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(after)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM), output  # -SIGTERM: before anything was made
    assert "Traceback" not in output
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_the_workers_build_their_apps_stops_them_all(workers: str) -> None:
    """A worker inherits granian's signal handlers, which only take note; stopped while it built its app,
    it used to go on, and mockserver waited for it forever."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--workers", workers, "--no-watch"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        forked_ones = until(lambda: children.read_text().split(), within=30)
        assert forked_ones, "no worker was started"
        time.sleep(0.05)  # building, not yet serving
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "mockserver stopped" in output
    assert all(gone(int(pid)) for pid in forked_ones)
