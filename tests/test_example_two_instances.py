"""examples/two-instances/run.sh, run as its README says against the tests' own PostgreSQL: both instances
come up on the ports given, a write through one is read through the other both ways, either one's journal
names both instances, and SIGTERM to the script stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import CANONICAL, ROOT
from postgres import Cluster, free_port

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "examples" / "two-instances" / "run.sh"
AUTH = {"Authorization": "Bearer example"}


def answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/__mock/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_example_serves_one_state_from_two_instances(postgres_cluster: Cluster, postgresql: str) -> None:
    database = postgresql.rsplit("dbname=", 1)[1]
    ports = free_port(), free_port()
    while ports[1] == ports[0]:
        ports = ports[0], free_port()
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # where `mockserver` is
    script = subprocess.Popen(
        [str(SCRIPT), postgres_cluster.url(database), *map(str, ports)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its group: the instances too, for the cleanup below
    )
    try:
        deadline = time.monotonic() + 30
        while not (answers(a) and answers(b)):
            assert script.poll() is None, script.communicate()[0]
            assert time.monotonic() < deadline, "the instances did not answer within 30 s"
            time.sleep(0.2)

        made = requests.post(f"{a}{CANONICAL}", json={"name": "made through a"}, headers=AUTH, timeout=10)
        assert made.status_code == 201, made.text
        new_id = made.json()["access_profile"]["id"]
        seen = requests.get(f"{b}{CANONICAL}/{new_id}", headers=AUTH, timeout=10)
        assert seen.status_code == 200 and seen.json()["access_profile"]["name"] == "made through a"

        edited = requests.put(f"{b}{CANONICAL}/{new_id}", json={"description": "edited on b"}, headers=AUTH, timeout=10)
        assert edited.status_code == 200, edited.text
        back = requests.get(f"{a}{CANONICAL}/{new_id}", headers=AUTH, timeout=10).json()["access_profile"]
        assert (back["description"], back["version"]) == ("edited on b", 2)

        # Either instance's journal (the inspector's) holds the requests of both, each naming its instance.
        def answered_by() -> set[str]:
            found: set[str] = set()
            for method in ("POST", "PUT"):  # the POST went to a, the PUT to b
                journal = requests.get(f"{b}/__mock/journal?method={method}", timeout=10).json()
                found |= {entry["instance"] for entry in journal["entries"]}
            return found

        deadline = time.monotonic() + 5
        while answered_by() != {"a", "b"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answered_by() == {"a", "b"}

        script.send_signal(signal.SIGTERM)
        output, _ = script.communicate(timeout=20)
        assert f"instance a: {a}" in output and f"instance b: {b}" in output
        deadline = time.monotonic() + 10  # a worker ends with its parent, a moment later
        while answers(a) or answers(b):
            assert time.monotonic() < deadline, "an instance still answers after the script stopped"
            time.sleep(0.2)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.communicate()
