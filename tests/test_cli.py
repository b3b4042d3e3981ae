"""``mockserver serve`` as users run it: a real process, a real socket, Ctrl-C to stop."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import CANONICAL
from serving import ROOT, run_mockserver, serve

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer dev"}


def test_serve_answers_with_the_fixtures_and_stops_cleanly_on_ctrl_c() -> None:
    started = time.monotonic()
    with serve() as server:
        assert server.url.startswith("http://127.0.0.1:")
        listing = requests.get(f"{server.url}{CANONICAL}", headers=AUTH, timeout=10)
        assert listing.status_code == 200
        assert listing.json()["total_count"] == 10
        seed_put = requests.put(
            f"{server.url}/api/access-profiles/1", json={"rate_limit": None}, headers=AUTH, timeout=10
        )
        assert seed_put.status_code == 200 and "rate_limit" not in seed_put.json()["access_profile"]
        assert time.monotonic() - started < 15
        assert server.stop(signal.SIGINT) == 0
    output = "".join(server.lines)
    assert "mockserver stopped" in output
    assert "Traceback" not in output
    assert f"GET {CANONICAL} listAccessProfiles 200" in output  # one log line per request


def test_serve_stops_cleanly_on_sigterm() -> None:
    with serve() as server:
        assert server.stop(signal.SIGTERM) == 0
    assert "mockserver stopped" in "".join(server.lines)


def test_environment_variables_configure_the_server(tmp_path: Path) -> None:
    fixtures = tmp_path / "one.json"
    fixtures.write_text('{"access_profiles": [{"id": 7, "name": "Only one"}]}', encoding="utf-8")
    env = {"MOCKSERVER_FIXTURES": str(fixtures), "MOCKSERVER_API_KEYS": str(ROOT / "fixtures" / "api-keys.json")}
    with serve(env=env) as server:
        health = requests.get(f"{server.url}/__mock/health", timeout=10).json()
        assert health["profiles"] == 1 and health["auth"] == "api-keys"
        assert requests.get(f"{server.url}{CANONICAL}", headers=AUTH, timeout=10).status_code == 401


def test_flags_beat_environment_variables(tmp_path: Path) -> None:
    fixtures = tmp_path / "one.json"
    fixtures.write_text('{"access_profiles": [{"id": 7, "name": "Only one"}]}', encoding="utf-8")
    with serve("--fixtures", str(fixtures), "--no-strict", env={"MOCKSERVER_STRICT": "true"}) as server:
        health = requests.get(f"{server.url}/__mock/health", timeout=10).json()
        assert health["profiles"] == 1 and health["strict"] is False


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return run_mockserver(*args, env={**os.environ, **(env or {})})


def test_a_bad_fixture_stops_the_start_naming_file_record_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"access_profiles": [{"id": 1, "name": "A", "budgets": [{"max_limit": 1}]}]}', encoding="utf-8")
    result = run("serve", "--port", "0", "--fixtures", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mockserver: error: {bad}: access_profiles[0] (id 1, 'A'): budgets[0].reset_duration: this field is required"
    )


def test_a_bad_setting_is_reported(tmp_path: Path) -> None:
    result = run("serve", env={"MOCKSERVER_PORT": "eighty"})
    assert result.returncode == 2
    assert "MOCKSERVER_PORT='eighty': expected an integer" in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once the probe is closed


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_postgresql_state_that_cannot_be_reached_stops_the_start_without_its_password(
    tmp_path: Path, how: str
) -> None:
    import os
    import sys

    url = f"postgresql://mock:hunter2@127.0.0.1:{_closed_port()}/mock"
    args, env = (["--state", url], {}) if how == "flag" else ([], {"MOCKSERVER_STATE": url})
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args],
        cwd=tmp_path,  # where the URL once became the folders of a SQLite file
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mockserver: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "listening" not in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_postgresql_state_is_served_and_the_banner_shows_where_without_the_password(postgresql: str) -> None:
    info = dict(part.split("=", 1) for part in postgresql.split())
    where = f"{info['host']}:{info['port']}/{info['dbname']}"
    url = f"postgresql://{info['user']}:hunter2@{where}"  # the tests' server trusts: any password does
    with serve("--state", url, "--no-watch") as server:
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Kept in PostgreSQL"}, headers=AUTH)
        assert created.status_code == 201, created.text
        assert server.stop(signal.SIGTERM) == 0
    output = "".join(server.lines)
    assert f"postgresql://{info['user']}:***@{where}" in output
    assert "hunter2" not in output
    with serve("--state", url, "--no-watch") as again:
        profile_id = created.json()["access_profile"]["id"]
        assert requests.get(f"{again.url}{CANONICAL}/{profile_id}", headers=AUTH, timeout=10).status_code == 200


def test_a_state_url_of_an_unknown_scheme_is_refused_naming_the_known_ones() -> None:
    result = run("serve", "--port", "0", "--state", "redis://cache:hunter2@cache:6379/0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mockserver: error: --state 'redis://cache:***@cache:6379/0': unknown scheme 'redis'; a SQLite file is given "
        "by its path, without a scheme (e.g. ./mock.db); known schemes: postgresql:// and postgres://"
    )
    assert not (ROOT / "redis:").exists()


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["--workers", "2", "--server", "waitress"], "--workers N (more than 1) runs on granian only"),
        (["--workers", "0"], "workers: expected 1 or more, got 0"),
    ],
    ids=["waitress", "zero"],
)
def test_workers_that_cannot_run_are_refused(args: list[str], refused: str) -> None:
    result = run("serve", "--port", "0", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mockserver: error: {refused}"), result.stderr


def test_a_busy_port_is_reported() -> None:
    with serve() as server:
        port = server.url.rsplit(":", 1)[1]
        result = run("serve", "--port", port)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_help_lists_the_options() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--fixtures", "--api-keys", "--spec", "--strict", "--workers", "--instance"):
        assert option in result.stdout
    assert "MOCKSERVER_" in result.stdout and "postgresql://" in result.stdout
