"""What ``mockserver serve`` prints when it starts: where everything is, and how to begin."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from serving import ROOT, Served, serve

from mockserver.resources import bundled_api_keys
from mockserver.server import banner
from mockserver.server.context import Mock

URL = "http://127.0.0.1:8080"


def mock_of(app: Flask) -> Mock:
    return app.extensions["mockserver"]  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def in_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # paths are shown relative to the working directory


def test_the_default_start(make_app: Callable[..., Flask]) -> None:
    assert banner.lines(mock_of(make_app()), URL) == [
        "  API        http://127.0.0.1:8080/api/governance/  (24 operations; 22 deprecated aliases)",
        "  Docs       http://127.0.0.1:8080/docs  (Swagger UI; the spec itself: http://127.0.0.1:8080/openapi.json)",
        "  Inspector  http://127.0.0.1:8080/__mock/  (requests as they arrive, contract violations, state, snapshots)",
        "  Auth       permissive: any Bearer token or Basic login is an admin, e.g.",
        "             curl -s -H 'Authorization: Bearer dev' http://127.0.0.1:8080/api/governance/access-profiles",
        "  Spec       openapi/access-profiles.yaml  (Bifrost Enterprise Access Profiles management API 1.0.0)",
        "  Fixtures   fixtures/default.json  (10 profiles)",
        "  State      in memory, 10 profiles; lost when the mock stops (--state FILE keeps it)",
    ]


def test_strict_auth_a_control_token_and_a_kept_state(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    mock = mock_of(make_app(api_keys=bundled_api_keys(), control_token="t", state=state))
    shown = banner.lines(mock, "http://0.0.0.0:9000", restored=True)
    assert shown[0].startswith("  API        http://127.0.0.1:9000/api/governance/")  # a link, not the wildcard
    assert shown[3:] == [
        "  Auth       strict: the keys and admins of fixtures/api-keys.json; others get 401",
        "  Control    /__mock/ routes need Authorization: Bearer <control token>; the page asks for it",
        "  Spec       openapi/access-profiles.yaml  (Bifrost Enterprise Access Profiles management API 1.0.0)",
        "  Fixtures   fixtures/default.json  (10 profiles)",
        f"  State      {state}: 10 profiles kept from the last run",
        "             --fresh (or POST /__mock/reset) starts again from the fixtures",
    ]
    assert not any("curl" in line for line in shown)  # no key of the file is printed
    assert not any("brought back" in line for line in shown)  # the file kept no session
    assert banner.lines(mock, URL, restored=False)[-2:] == [
        f"  State      {state}: started from the fixtures, kept across restarts",
        "             --fresh (or POST /__mock/reset) starts again from the fixtures",
    ]


def test_a_restart_names_the_sessions_it_brought_back(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    first = make_app(state=state)
    for n in range(12):
        first.test_client().get("/__mock/state/counts", headers={"X-Mockserver-Session": f"worker-{n:02}"})
    mock_of(first).store.close()
    shown = banner.lines(mock_of(make_app(state=state)), URL, restored=True)
    named = ", ".join(f"worker-{n:02}" for n in range(10))
    assert shown[-3:] == [
        f"  State      {state}: 10 profiles kept from the last run",
        f"             12 sessions brought back: {named} and 2 more",
        "             --fresh (or POST /__mock/reset) starts again from the fixtures",
    ]


def test_the_announcer_adds_the_block_after_the_listening_line_only(make_app: Callable[..., Flask]) -> None:
    written: list[str] = []
    announce = banner.announcer(mock_of(make_app()), False, written.append)
    announce(f"mockserver listening on {URL}  (Ctrl-C to stop)")
    announce("mockserver stopped")
    assert written[0] == f"mockserver listening on {URL}  (Ctrl-C to stop)"
    assert written[1] == "\n".join(["", *banner.lines(mock_of(make_app()), URL), ""])
    assert written[2:] == ["mockserver stopped"]


def block_of(served: Served) -> list[str]:
    """The lines printed after the URL line, once the block's last line is there."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = "".join(served.lines).splitlines()
        if any(line.startswith("  State") for line in lines):
            return lines
        time.sleep(0.05)
    raise AssertionError("no banner:\n" + "".join(served.lines))


@pytest.mark.slow
def test_serve_prints_the_block_and_its_curl_works(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with serve("--no-watch", "--state", str(state)) as served:
        lines = block_of(served)
        assert served.lines[0].startswith("mockserver listening on ")  # still the first line
        assert (
            f"  Inspector  {served.url}/__mock/  (requests as they arrive, contract violations, state, snapshots)"
            in lines
        )
        assert f"  State      {state}: started from the fixtures, kept across restarts" in lines
        [command] = [line.strip() for line in lines if line.strip().startswith("curl ")]
        answer = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=10, check=True)
        assert '"total_count":10' in answer.stdout
    with serve("--no-watch", "--state", str(state)) as served:
        assert f"  State      {state}: 10 profiles kept from the last run" in block_of(served)
    with serve("--no-watch", "--state", str(state), "--fresh") as served:
        assert f"  State      {state}: started from the fixtures, kept across restarts" in block_of(served)
