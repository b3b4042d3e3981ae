"""--state: the state in a SQLite file, durable before the answer; deterministic runs; hot reload."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CANONICAL, Api
from flask import Flask
from serving import ROOT, serve

from mockserver import Settings, create_app
from mockserver.server.reload import Reloader
from mockserver.storage.sqlite import SqliteState, StateFileError

AUTH = {"Authorization": "Bearer keeper"}


def fresh_api(**settings: Any) -> Api:
    return Api(create_app(Settings(**settings)))


def closed(api: Api) -> Api:
    """The app after letting go of its state file, so that another app (a restart) may open it."""
    api.mock.store.close()
    return api


def test_a_new_app_on_the_same_file_has_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = fresh_api(state=path)
    created = first.post(CANONICAL, {"name": "Kept", "budgets": [{"max_limit": 1, "reset_duration": "1d"}]}).json
    first.put(f"{CANONICAL}/1", {"rate_limit": None})
    first.delete(f"{CANONICAL}/9")
    first.post(f"{CANONICAL}/6/roles", {"role_ids": [7], "apply_to_existing": True})
    first.client.post("/__mock/snapshots/demo")
    before = first.mock.store.snapshot().to_dict()
    closed(first)

    second = fresh_api(state=path)
    assert second.mock.store.snapshot().to_dict() == before
    assert second.profile(created["access_profile"]["id"]) == created["access_profile"]
    assert [s["name"] for s in second.client.get("/__mock/snapshots").json["snapshots"]] == ["demo"]
    # Ids go on from where they were.
    assert second.post(CANONICAL, {"name": "Next"}).json["access_profile"]["id"] == created["access_profile"]["id"] + 1


def test_fresh_starts_again_from_the_fixtures_and_reset_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"

    def total(api: Api) -> int:
        count: int = api.get(CANONICAL).json["total_count"]
        closed(api)
        return count

    first = fresh_api(state=path)
    first.post(CANONICAL, {"name": "Gone after fresh"})
    closed(first)
    assert total(fresh_api(state=path)) == 11
    assert total(fresh_api(state=path, fresh=True)) == 10
    again = fresh_api(state=path)
    again.post(CANONICAL, {"name": "Gone after reset"})
    again.client.post("/__mock/reset")
    closed(again)
    assert total(fresh_api(state=path)) == 10


def test_only_what_changed_is_written(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    api = fresh_api(state=path)
    persistence = api.mock.store.persistence
    assert isinstance(persistence, SqliteState)
    db = persistence._db
    written = db.total_changes
    api.put(f"{CANONICAL}/3", {"description": "one change"})
    # The profile, its new version row, its audit row, the counters, the history counts it adds to
    # (versions, and audit rows by no filter, by profile, by action, by both), and its change log row.
    assert db.total_changes - written == 4 + 5 + 1
    written = db.total_changes
    api.get(f"{CANONICAL}/3")
    api.put(f"{CANONICAL}/3", {"description": "one change"})  # no change: nothing written
    api.put(f"{CANONICAL}/3", {"name": ""})  # refused: nothing written
    assert db.total_changes == written


def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateFileError, match="not a mockserver state file"):
        create_app(Settings(state=path))


def test_serve_keeps_the_state_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with serve("--state", str(path)) as server:
        created = requests.post(f"{server.url}{CANONICAL}", json={"name": "Across restarts"}, headers=AUTH, timeout=10)
        assert created.status_code == 201
        assert server.stop(signal.SIGTERM) == 0
    with serve("--state", str(path)) as server:
        profile_id = created.json()["access_profile"]["id"]
        again = requests.get(f"{server.url}{CANONICAL}/{profile_id}", headers=AUTH, timeout=10)
        assert again.json()["access_profile"] == created.json()["access_profile"]
    with serve("--state", str(path), "--fresh") as server:
        assert requests.get(f"{server.url}{CANONICAL}/{profile_id}", headers=AUTH, timeout=10).status_code == 404


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """A client writes continuously; the server is killed with SIGKILL and restarted on the same file."""
    path = tmp_path / "state.sqlite"
    acknowledged: dict[int, str] = {}
    kills = 0
    rng = random.Random(20261126)
    attempts = 0
    for _ in range(6):
        with serve("--state", str(path)) as server:
            stop = threading.Event()

            def write(url: str = server.url, stop: threading.Event = stop) -> None:
                nonlocal attempts
                with requests.Session() as session:
                    while not stop.is_set():
                        attempts += 1
                        name = f"write {attempts}"
                        try:
                            response = session.post(f"{url}{CANONICAL}", json={"name": name}, headers=AUTH, timeout=5)
                        except requests.RequestException:
                            continue  # not acknowledged: the server died before answering
                        if response.status_code == 201:
                            acknowledged[response.json()["access_profile"]["id"]] = name

            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
            kills += 1
            stop.set()
            writer.join(timeout=10)
    with closing(sqlite3.connect(path)) as db:  # closed: an open connection would hold the file
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with serve("--state", str(path)) as server:
        listing = requests.get(f"{server.url}{CANONICAL}?limit=100", headers=AUTH, timeout=10).json()
        total = listing["total_count"]
        found: dict[int, str] = {}
        for offset in range(0, total, 100):
            page = requests.get(f"{server.url}{CANONICAL}?limit=100&offset={offset}", headers=AUTH, timeout=10)
            found |= {p["id"]: p["name"] for p in page.json()["access_profiles"]}
    print(f"\nkill -9: {kills} kills, {len(acknowledged)} acknowledged writes of {attempts} attempts")
    assert kills == 6 and len(acknowledged) > 50
    missing = {i: n for i, n in acknowledged.items() if found.get(i) != n}
    assert missing == {}


# -- deterministic runs ------------------------------------------------------------------------------


def test_a_fixed_clock_and_sequential_ids_give_the_same_answers_every_run(tmp_path: Path) -> None:
    def run() -> list[Any]:
        api = fresh_api(clock="2026-01-01T00:00:00Z", sequential_ids=True)
        created = api.post(CANONICAL, {"name": "Stable", "budgets": [{"max_limit": 1, "reset_duration": "1d"}]})
        attached = api.post(f"{CANONICAL}/9/roles", {"role_ids": [7], "apply_to_existing": True})
        key = api.post("/api/governance/users/u-heidi/access-profiles/1/virtual-keys")
        return [created.json, attached.json, key.json, api.get("/api/governance/users/u-heidi/access-profiles").json]

    first = run()
    assert first == run()
    profile = first[0]["access_profile"]
    assert profile["created_at"] == "2026-01-01T00:00:00Z"
    assert profile["budgets"][0]["id"] == "00000000-0000-4000-8000-000000000001"


def test_a_ticking_clock_starts_at_the_instant(tmp_path: Path) -> None:
    api = fresh_api(clock="2030-06-01T12:00:00Z", clock_ticking=True)
    first = api.post(CANONICAL, {"name": "t1"}).json["access_profile"]["created_at"]
    time.sleep(0.05)
    second = api.post(CANONICAL, {"name": "t2"}).json["access_profile"]["created_at"]
    assert first.startswith("2030-06-01T12:00:00") and second > first


def test_sequential_ids_continue_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = fresh_api(state=path, sequential_ids=True)
    one = first.post(CANONICAL, {"name": "a", "rate_limit": {}}).json
    closed(first)
    two = fresh_api(state=path, sequential_ids=True).post(CANONICAL, {"name": "b", "rate_limit": {}}).json
    assert one["access_profile"]["rate_limit"]["id"] != two["access_profile"]["rate_limit"]["id"]


# -- hot reload --------------------------------------------------------------------------------------


@pytest.fixture
def editable(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "spec.yaml"
    fixtures = tmp_path / "fixtures.json"
    shutil.copy(ROOT / "openapi" / "access-profiles.yaml", spec)
    shutil.copy(ROOT / "fixtures" / "default.json", fixtures)
    return spec, fixtures


def touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a clearly newer mtime


def test_a_spec_edit_applies_and_keeps_the_state(
    make_app: Callable[..., Flask], editable: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    spec, fixtures = editable
    app = make_app(spec=spec, fixtures=fixtures)
    api, reloader = Api(app), Reloader(app)
    made = api.post(CANONICAL, {"name": "Made before the edit"}).json["access_profile"]
    assert api.put(f"{CANONICAL}/1", {"tags": ["a", "b", "c"]}).status_code == 200
    touch(spec, spec.read_text(encoding="utf-8").replace("maxItems: 50", "maxItems: 2"))
    (message,) = reloader.check()
    assert message.startswith(f"spec reloaded from {spec}")
    refused = api.put(f"{CANONICAL}/1", {"tags": ["a", "b", "c"]})
    assert refused.status_code == 400 and "at most 2 items" in refused.json["error"]["message"]
    assert api.profile(made["id"])["name"] == "Made before the edit"


def test_a_broken_edit_keeps_the_previous_version(
    make_app: Callable[..., Flask], editable: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    spec, fixtures = editable
    app = make_app(spec=spec, fixtures=fixtures)
    api, reloader = Api(app), Reloader(app)
    touch(spec, "openapi: 3.1.0\npaths: {\n")
    touch(fixtures, '{"access_profiles": [{"id": 1}]}')
    messages = reloader.check()
    assert len(messages) == 2 and all("the previous version stays in use" in m for m in messages)
    assert "name: this field is required" in messages[1]
    assert api.get(f"{CANONICAL}/1").status_code == 200
    api.client.post("/__mock/reset")
    assert api.get(CANONICAL).json["total_count"] == 10


def test_a_fixture_edit_is_what_reset_goes_back_to(make_app: Callable[..., Flask], editable: tuple[Path, Path]) -> None:
    spec, fixtures = editable
    app = make_app(spec=spec, fixtures=fixtures)
    api, reloader = Api(app), Reloader(app)
    api.post(CANONICAL, {"name": "Still here until reset"})
    touch(fixtures, json.dumps({"access_profiles": [{"id": 1, "name": "Only this one"}]}))
    (message,) = reloader.check()
    assert "POST /__mock/reset to start from them" in message
    assert api.get(CANONICAL).json["total_count"] == 11
    api.client.post("/__mock/reset")
    assert [p["name"] for p in api.get(CANONICAL).json["access_profiles"]] == ["Only this one"]


def test_serve_watches_the_files(editable: tuple[Path, Path]) -> None:
    spec, fixtures = editable
    with serve("--spec", str(spec), "--fixtures", str(fixtures)) as server:
        url = f"{server.url}{CANONICAL}/1"
        assert requests.put(url, json={"tags": ["a", "b", "c"]}, headers=AUTH, timeout=10).status_code == 200
        touch(spec, spec.read_text(encoding="utf-8").replace("maxItems: 50", "maxItems: 2"))
        deadline = time.monotonic() + 10
        while requests.put(url, json={"tags": ["a", "b", "c"]}, headers=AUTH, timeout=10).status_code == 200:
            assert time.monotonic() < deadline, "the edit was not applied"
            time.sleep(0.2)
    assert any("spec reloaded" in line for line in server.lines)
