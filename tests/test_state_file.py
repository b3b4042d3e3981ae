"""The state file under load and in trouble: writes that cost what they change, one owner per file,
and a write that cannot be saved changes nothing."""

from __future__ import annotations

import itertools
import json
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CANONICAL, Api
from serving import run_mockserver, serve

from mockserver import Settings, create_app
from mockserver.domain.store import State
from mockserver.storage import sqlite as persistence
from mockserver.storage import sqlite_file as state_file
from mockserver.storage.history import AUDIT_FILTERS
from mockserver.storage.sqlite import SqliteHistory, SqliteState, StateFileError

AUTH = {"Authorization": "Bearer keeper"}
USERS = "/api/governance/users"


def opened(path: Path, **settings: Any) -> Api:
    return Api(create_app(Settings(state=path, **settings)))


def whole(api: Api) -> dict[str, Any]:
    return api.mock.store.snapshot().to_dict()


def file_bytes(path: Path) -> dict[str, bytes]:
    """The state file and its write-ahead log, as they are on disk."""
    return {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file()}


def every_write(api: Api) -> None:
    """One request of each operation that changes something, all answered 2xx."""
    budget = {"max_limit": 10, "reset_duration": "1d"}
    created = api.post(CANONICAL, {"name": "Every write", "budgets": [budget], "rate_limit": {"token_max_limit": 5}})
    new_id = created.json["access_profile"]["id"]
    steps = [
        api.put(f"{CANONICAL}/{new_id}", {"description": "changed", "rate_limit": None}),
        api.request("PUT", f"{CANONICAL}/{new_id}/deactivate"),
        api.request("PUT", f"{CANONICAL}/{new_id}/activate"),
        api.post(f"{CANONICAL}/{new_id}/clone", {"name": "Every write (clone)"}),
        api.post(f"{CANONICAL}/{new_id}/roles", {"role_ids": [7], "apply_to_existing": True}),
        api.delete(f"{CANONICAL}/{new_id}/roles/7"),
        api.post(f"{CANONICAL}/8/propagate", {"fields": ["budgets"], "reset_usage": True}),
        api.post(f"{USERS}/u-heidi/access-profiles/1/virtual-keys", {"name": "extra-key"}),
    ]
    with api.mock.store.atomic() as state:
        copy = next(c for c in state.user_copies if c["user_id"] == "u-dave" and c["governance"]["budgets"])
    path = f"{USERS}/u-dave/access-profiles/{copy['id']}/budgets/{copy['governance']['budgets'][0]['id']}/override"
    steps.append(api.put(path, {"amount": 5, "mode": "forever"}))
    steps.append(api.delete(path))
    steps.append(api.delete(f"{USERS}/u-heidi/access-profiles/virtual-keys/{_extra_key(api)}"))
    steps.append(api.delete(f"{USERS}/u-dave/access-profiles/{copy['id']}"))
    steps.append(api.delete(f"{CANONICAL}/3"))
    assert [s.status_code for s in steps if s.status_code >= 300] == [], [s.json for s in steps if s.status_code >= 300]


def _extra_key(api: Api) -> str:
    with api.mock.store.atomic() as state:
        return next(k["id"] for k in state.virtual_keys if k["name"] == "extra-key")


# -- what is saved ----------------------------------------------------------------------------------


def test_every_kind_of_write_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = opened(path)
    every_write(first)
    first.client.post("/__mock/snapshots/after-everything")
    before = whole(first)
    first.mock.store.close()

    second = opened(path)
    assert whole(second) == before
    assert second.post(CANONICAL, {"name": "Next"}).json["access_profile"]["id"] == before["counters"]["profile"] + 1


def test_a_write_saves_only_what_it_changed(tmp_path: Path) -> None:
    api = opened(tmp_path / "state.sqlite")
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)
    written = file._db.total_changes
    api.put(f"{CANONICAL}/3", {"description": "one change"})
    # The profile, its new version row, its audit row, the counters, the history counts it adds to
    # (versions, and audit rows by no filter, by profile, by action, by both), and its change log row.
    assert file._db.total_changes - written == 4 + 5 + 1
    last = file._db.execute("SELECT n, data FROM changes WHERE session = '' ORDER BY n DESC LIMIT 1").fetchone()
    logged = json.loads(last[1])
    assert (logged["kind"], logged["removed"]) == ("write", [])
    assert [(kind, key, record["description"]) for kind, key, record in logged["saved"]] == [
        ("profile", "3", "one change")
    ]
    written = file._db.total_changes
    api.get(f"{CANONICAL}/3")
    api.put(f"{CANONICAL}/3", {"description": "one change"})  # no change: nothing written
    api.put(f"{CANONICAL}/3", {"name": ""})  # refused: nothing written
    assert file._db.total_changes == written


def test_history_is_read_from_the_file_not_kept_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = opened(path)
    for n in range(3):
        first.put(f"{CANONICAL}/2", {"description": f"edit {n}"})
    first.mock.store.close()

    second = opened(path)
    with second.mock.store.atomic() as state:
        assert isinstance(state.history, SqliteHistory)
    versions = second.get(f"{CANONICAL}/2/versions").json["versions"]
    assert [json.loads(v["snapshot"])["description"] for v in versions[-3:]] == ["edit 0", "edit 1", "edit 2"]
    audit = second.get(f"{CANONICAL}/2/audit-logs?limit=2").json
    assert [json.loads(row["new_values"])["description"] for row in audit["audit_logs"]] == ["edit 2", "edit 1"]
    assert audit["total_count"] == 4  # the fixture's create row and three updates


def test_a_snapshot_keeps_the_history_of_its_moment(tmp_path: Path) -> None:
    api = opened(tmp_path / "state.sqlite")
    api.put(f"{CANONICAL}/2", {"description": "kept"})
    assert api.client.post("/__mock/snapshots/one").status_code == 201
    before = whole(api)
    api.put(f"{CANONICAL}/2", {"description": "dropped"})
    api.delete(f"{CANONICAL}/5")
    assert api.client.post("/__mock/snapshots/one/restore").status_code == 200
    assert whole(api) == before
    assert api.get(f"{CANONICAL}/2/versions").json["versions"][-1]["description"] == "kept"


def test_a_state_file_of_version_1_is_carried_over(tmp_path: Path) -> None:
    """The previous layout kept history rows among the records and snapshots as whole states."""
    donor = Api(create_app(Settings()))
    donor.put(f"{CANONICAL}/1", {"description": "from version 1"})
    data = donor.mock.store.snapshot().to_dict()
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key));"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE snapshots (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, data TEXT NOT NULL);"
        )
        kinds = {
            "profile": "profiles",
            "version": "versions",
            "audit": "audit",
            "role_attachment": "role_attachments",
            "user_copy": "user_copies",
            "role": "roles",
            "user": "users",
            "virtual_key": "virtual_keys",
        }
        db.executemany(
            "INSERT INTO records VALUES (?, ?, ?)",
            [(kind, str(r["id"]), json.dumps(r)) for kind, key in kinds.items() for r in data[key]],
        )
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("counters", json.dumps(data["counters"]))])
        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", ("old", "2026-01-01T00:00:00Z", json.dumps(data)))
        db.commit()

    carried = opened(path)
    assert whole(carried) == data
    carried.put(f"{CANONICAL}/1", {"description": "after"})
    assert carried.client.post("/__mock/snapshots/old/restore").json["profiles"] == 10
    assert whole(carried) == data


def test_a_state_file_of_version_3_is_carried_over_with_its_counts(tmp_path: Path) -> None:
    """Version 3 had no history_counts: every audit page counted its rows. The counts are made at start."""
    path = tmp_path / "v3.sqlite"
    first = opened(path)
    first.put(f"{CANONICAL}/2", {"description": "before the upgrade"})
    first.get(f"{CANONICAL}/1", headers={"X-Mockserver-Session": "worker"})
    first.put(f"{CANONICAL}/1", {"description": "in a session"}, headers={"X-Mockserver-Session": "worker"})
    expected = {name: audit_totals(first, name) for name in ("", "worker")}
    first.mock.store.close()
    with closing(sqlite3.connect(path)) as db:  # what a version 3 file holds: all but the counts
        db.execute("DROP TABLE history_counts")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
        db.commit()

    carried = opened(path)
    assert {name: audit_totals(carried, name) for name in ("", "worker")} == expected
    with carried.mock.store.atomic() as state:
        assert state.counts()["audit_logs"] == expected[""][()]
    file = carried.mock.store.persistence
    assert isinstance(file, SqliteState)
    assert file._file.version() == state_file.SCHEMA_VERSION == "5"


LAYOUT_5_TABLES = ("changes", "journal", "violations")


def test_a_state_file_of_version_4_is_carried_over_and_its_log_starts(tmp_path: Path) -> None:
    """Layout 5 is layout 4 with the change log, the shared journal and the violations."""
    path = tmp_path / "v4.sqlite"
    first = opened(path)
    first.put(f"{CANONICAL}/2", {"description": "before the upgrade"})
    first.put(f"{CANONICAL}/1", {"description": "in a session"}, headers={"X-Mockserver-Session": "worker"})
    first.client.post("/__mock/snapshots/kept")
    before = {
        name: first.client.get("/__mock/state", headers={"X-Mockserver-Session": name}).json for name in ("", "worker")
    }
    first.mock.store.close()
    with closing(sqlite3.connect(path)) as db:  # what a version 4 file holds
        for table in LAYOUT_5_TABLES:
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
        db.commit()

    carried = opened(path)
    for name in ("", "worker"):
        assert carried.client.get("/__mock/state", headers={"X-Mockserver-Session": name}).json == before[name]
    file = carried.mock.store.persistence
    assert isinstance(file, SqliteState)
    assert file._file.version() == "5"
    tables = {name for (name,) in file._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(LAYOUT_5_TABLES) <= tables
    assert carried.client.post("/__mock/snapshots/kept/restore").status_code == 200
    carried.put(f"{CANONICAL}/3", {"description": "after the upgrade"})
    logged = [
        json.loads(data)["kind"]
        for (data,) in file._db.execute("SELECT data FROM changes WHERE session = '' ORDER BY n")
    ]
    assert logged == ["replace", "write"]  # the log starts with the first change after the upgrade
    carried.mock.store.close()
    assert opened(path).profile(3)["description"] == "after the upgrade"


def test_the_change_log_keeps_its_last_rows_and_says_what_each_change_was(tmp_path: Path) -> None:
    api = opened(tmp_path / "state.sqlite")
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)

    def log(session: str = "") -> list[tuple[int, dict[str, Any]]]:
        rows = file._db.execute("SELECT n, data FROM changes WHERE session = ? ORDER BY n", (session,))
        return [(n, json.loads(data)) for n, data in rows]

    start = log()[-1][0]
    api.post(CANONICAL, {"name": "Logged"})
    api.client.put("/__mock/sessions/other", json={"latency_ms": 5})
    api.client.put("/__mock/sessions/other", json={"latency_ms": 7})
    api.client.post("/__mock/reset")
    api.client.delete("/__mock/sessions/other")
    written, reset = log()[-2:]
    assert written[0] == start + 1 and written[1]["kind"] == "write" and written[1]["counters"]["profile"] == 11
    assert [kind for kind, _, _ in written[1]["saved"]] == ["profile"]
    assert reset == (start + 2, {"kind": "replace"})
    assert [data for _, data in log("other")] == [{"kind": "dropped", "expired": False}]  # older rows went with it
    assert log("other")[0][0] == 3  # created (replace), chaos set once more, dropped: the numbers go on
    for n in range(state_file.LOG_KEPT + 5):
        api.put(f"{CANONICAL}/1", {"description": f"edit {n}"})
    kept = log()
    assert len(kept) == state_file.LOG_KEPT
    assert [n for n, _ in kept] == list(range(kept[0][0], kept[0][0] + state_file.LOG_KEPT))
    assert kept[-1][1]["saved"][0][2]["description"] == f"edit {state_file.LOG_KEPT + 4}"


def test_the_catch_up_query_searches_the_primary_key(tmp_path: Path) -> None:
    api = opened(tmp_path / "state.sqlite")
    every_write(api)
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)
    for sql, parameters in ((state_file.CATCH_UP_SQL, ("", 3)), (state_file.LAST_SQL, ("",))):
        plan = " | ".join(row[-1] for row in file._db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters))
        assert plan.startswith("SEARCH changes USING PRIMARY KEY (session=?"), plan
        assert "TEMP B-TREE" not in plan, plan


def audit_totals(api: Api, session: str) -> dict[tuple[str, ...], int]:
    """total_count of the audit list with each set of filters, as the API answers it."""
    headers = {"X-Mockserver-Session": session} if session else {}
    found = {}
    for filters in ((), ("action=update",), ("action=create",), ("user_id=u-dave",), ("action=update", "user_id=x")):
        query = "&".join(filters)
        found[filters] = api.get(f"{CANONICAL}/audit-logs?{query}", headers=headers).json["total_count"]
    found[("profile 2",)] = api.get(f"{CANONICAL}/2/audit-logs", headers=headers).json["total_count"]
    return found


def test_kept_counts_agree_with_the_rows_after_every_kind_of_change(tmp_path: Path) -> None:
    """The counts kept in the file answer each filter as counting the rows in memory would."""
    api = opened(tmp_path / "state.sqlite")
    every_write(api)
    assert api.client.post("/__mock/snapshots/mid").status_code == 201
    api.put(f"{CANONICAL}/2", {"description": "after the snapshot"})
    assert api.client.post("/__mock/snapshots/mid/restore").status_code == 200
    api.put(f"{CANONICAL}/4", {"description": "after the restore"})
    file_history = api.mock.store.snapshot()  # its history in memory, counted from the rows
    with api.mock.store.atomic() as state:
        kept = state.history
        assert isinstance(kept, SqliteHistory)
        _, audit_rows = file_history.history.rows()
        actions = {row["action"] for row in audit_rows} | {"nothing-such"}
        users = {row["user_id"] for row in audit_rows if row["user_id"]} | {"u-nobody"}
        profiles = {row["access_profile_id"] for row in audit_rows if row["access_profile_id"]}
        for profile_id in [None, *profiles]:
            for action in [None, *actions]:
                for user_id in [None, *users]:
                    expected = file_history.history.audit_page(profile_id, action, user_id, 5, 1)
                    assert kept.audit_page(profile_id, action, user_id, 5, 1) == expected, (profile_id, action, user_id)
        assert kept.sizes() == file_history.history.sizes()


def test_every_history_read_uses_an_index_matching_its_filter_and_order(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN of each history read: no scan of the session's rows, no sort of them."""
    api = opened(tmp_path / "state.sqlite")
    every_write(api)
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)
    reads = {
        "versions of a profile": (persistence.VERSIONS_SQL, ("", 1), [{"profile_id"}]),
        "one version": (persistence.VERSION_SQL, ("", 1, 1), [{"profile_id", "version"}]),
        "a count (audit and versions)": (persistence.COUNT_SQL, ("", "x"), [{"key"}]),
    }
    for n in range(len(AUDIT_FILTERS) + 1):
        for used in itertools.combinations(AUDIT_FILTERS, n):
            # Without a filter, the walk down the session's primary key in id order stops after the page.
            # A user's rows are few, so with a user either that index or one of the other filters serves.
            others = set(used) - {"user_id"}
            wanted = [{"user_id"}, *([others] if others else [])] if "user_id" in used else [set(used) or {"session"}]
            reads[f"audit page by {used or 'nothing'}"] = (persistence.audit_page_sql(used), ("",) * (n + 3), wanted)
    for name, (sql, parameters, columns) in reads.items():  # columns: the index must match one of these sets
        plan = [row[-1] for row in file._db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters)]
        text = " | ".join(plan)
        assert not any(step.startswith("SCAN") for step in plan), f"{name}: {text}"
        assert "TEMP B-TREE" not in text, f"{name}: {text}"
        searched = re.findall(r"\((.*)\)", plan[0])
        assert searched, f"{name}: {text}"
        assert any(all(f"{c}=?" in searched[0] for c in choice) for choice in columns), f"{name}: {text}"


def test_a_file_of_another_layout_is_refused_unless_fresh(tmp_path: Path) -> None:
    """Version 2 (never released: sessions came before it was) kept records without a session."""
    path = tmp_path / "dev-build.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key));"
            "INSERT INTO meta VALUES ('schema', '2'), ('counters', '{}');"
        )
    with pytest.raises(StateFileError, match="written by another version of mockserver; start with --fresh"):
        opened(path)
    fresh = opened(path, fresh=True)
    assert len(whole(fresh)["profiles"]) == 10
    fresh.put(f"{CANONICAL}/1", {"description": "kept"})
    fresh.mock.store.close()
    assert opened(path).profile(1)["description"] == "kept"


# -- one owner per file -----------------------------------------------------------------------------


def test_a_second_app_on_the_same_file_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = opened(path)
    with pytest.raises(StateFileError, match=f"{path} is in use by another mockserver; stop it or use --state"):
        opened(path)
    assert first.put(f"{CANONICAL}/1", {"description": "still the owner"}).status_code == 200
    first.mock.store.close()
    assert opened(path).profile(1)["description"] == "still the owner"


@pytest.mark.slow
def test_a_second_process_is_refused_and_the_first_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with serve("--state", str(path)) as owner:
        assert requests.put(f"{owner.url}{CANONICAL}/1", json={"description": "first"}, headers=AUTH).status_code == 200
        on_disk = file_bytes(path)
        second = run_mockserver("serve", "--port", "0", "--state", str(path))
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"mockserver: error: {path} is in use by another mockserver (pid {owner.serving_pid()}); "
            "stop it or use --state with another file"
        )
        assert file_bytes(path) == on_disk  # it wrote nothing
        changed = requests.put(f"{owner.url}{CANONICAL}/1", json={"description": "second"}, headers=AUTH)
        assert changed.status_code == 200
        assert owner.stop(signal.SIGTERM) == 0
    with serve("--state", str(path)) as again:
        profile = requests.get(f"{again.url}{CANONICAL}/1", headers=AUTH, timeout=10).json()["access_profile"]
        assert profile["description"] == "second"


@pytest.mark.slow
def test_after_kill_9_of_the_owner_the_next_start_takes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with serve("--state", str(path)) as owner:
        created = requests.post(f"{owner.url}{CANONICAL}", json={"name": "Before the kill"}, headers=AUTH, timeout=10)
        assert created.status_code == 201
        owner.process.send_signal(signal.SIGKILL)
        owner.process.wait(timeout=10)
    with serve("--state", str(path)) as again:
        new_id = created.json()["access_profile"]["id"]
        assert requests.get(f"{again.url}{CANONICAL}/{new_id}", headers=AUTH, timeout=10).status_code == 200


# -- a write that cannot be saved --------------------------------------------------------------------


@pytest.fixture
def failing_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """While the flag is set, every save fails half-way through its transaction, as a full disk would."""
    failing = [False]
    append = persistence.append_history

    def append_or_fail(db: sqlite3.Connection, versions: Any, audit: Any, *session: str) -> None:
        append(db, versions, audit, *session)
        if failing[0]:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(persistence, "append_history", append_or_fail)
    yield failing


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda api: api.put(f"{CANONICAL}/1", {"name": "Not saved"}), id="update"),
        pytest.param(lambda api: api.post(CANONICAL, {"name": "Not saved"}), id="create"),
        pytest.param(lambda api: api.delete(f"{CANONICAL}/3"), id="delete"),
        pytest.param(lambda api: api.post(f"{CANONICAL}/2/clone", {"name": "Not saved"}), id="clone"),
        pytest.param(
            lambda api: api.post(f"{CANONICAL}/9/roles", {"role_ids": [7], "apply_to_existing": True}), id="attach"
        ),
        pytest.param(lambda api: api.client.post("/__mock/reset"), id="reset"),
    ],
)
def test_a_failed_save_leaves_the_state_and_the_file_as_they_were(
    tmp_path: Path, failing_disk: list[bool], write: Any
) -> None:
    path = tmp_path / "state.sqlite"
    api = opened(path)
    api.put(f"{CANONICAL}/1", {"description": "saved before the failure"})
    before, on_disk = whole(api), file_bytes(path)

    failing_disk[0] = True
    refused = write(api)
    failing_disk[0] = False

    assert refused.status_code == 500
    assert refused.json["error"]["type"] == "internal"
    assert refused.json["error"]["message"] == (
        f"{path}: the change was not saved (database or disk is full); nothing was changed"
    )
    assert whole(api) == before
    assert file_bytes(path) == on_disk
    # Nothing was used up either: the next create gets the id the failed one would have had.
    assert api.post(CANONICAL, {"name": "Saved"}).json["access_profile"]["id"] == before["counters"]["profile"] + 1
    after = whole(api)
    api.mock.store.close()
    assert whole(opened(path)) == after


def test_a_state_file_removed_under_the_mock_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    api = opened(path)
    before = api.profile(1)
    for file in path.parent.glob(path.name + "*"):
        file.unlink()
    refused = api.put(f"{CANONICAL}/1", {"name": "Into the void"})
    assert refused.status_code == 500
    assert refused.json["error"]["message"] == f"{path} was removed; the change was not saved; nothing was changed"
    assert api.profile(1) == before


def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_text("not a database at all, just text that is long enough to be read as a header\n" * 20)
    with pytest.raises(StateFileError, match="not a mockserver state file"):
        create_app(Settings(state=path))


def test_the_store_undoes_a_write_whose_body_fails() -> None:
    """A defect half-way through a write (an exception after a change) leaves nothing behind either."""
    api = Api(create_app(Settings()))
    store = api.mock.store
    before = store.snapshot()
    with pytest.raises(RuntimeError), store.write() as state:
        state.put_profile({**state.profiles[1], "name": "Half-written"})
        state.history.add_audit({"id": 99, "access_profile_id": 1, "action": "update", "user_id": None})
        state.next_id("profile")
        raise RuntimeError("a defect")
    assert store.snapshot() == before
    with store.atomic() as state:
        assert isinstance(state, State) and state.names["Platform engineering"] == 1


# -- readers and the disk sync ----------------------------------------------------------------------


def test_a_read_does_not_wait_for_a_write_being_saved_and_never_sees_it_unsaved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = opened(tmp_path / "state.sqlite")
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)
    saving, release = threading.Event(), threading.Event()
    save = file.save

    def slow_save(changes: Any) -> None:  # a disk sync that takes as long as the test wants
        saving.set()
        assert release.wait(10)
        save(changes)

    monkeypatch.setattr(file, "save", slow_save)
    writer = threading.Thread(target=lambda: api.put(f"{CANONICAL}/2", {"description": "being saved"}))
    writer.start()
    try:
        assert saving.wait(10)
        started = time.monotonic()
        seen = api.profile(2)
        listed = api.get(f"{CANONICAL}?limit=100").json["access_profiles"]
        versions = api.get(f"{CANONICAL}/2/versions").json["versions"]
        assert time.monotonic() - started < 2  # answered while the write waits for its sync
        assert seen["description"] != "being saved"
        assert all(p["description"] != "being saved" for p in listed)
        assert all("being saved" not in v["snapshot"] for v in versions)
    finally:
        release.set()
        writer.join(10)
    assert api.profile(2)["description"] == "being saved"  # published once saved


def test_a_history_read_does_not_wait_for_another_sessions_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of the file go through connections of their own: a transaction in progress holds none of them."""
    api = opened(tmp_path / "state.sqlite")
    other = {"X-Mockserver-Session": "writer"}
    api.get(f"{CANONICAL}/1", headers=other)  # the session exists: its fixtures are written
    in_transaction, release = threading.Event(), threading.Event()
    append = persistence.append_history

    def slow_append(db: sqlite3.Connection, versions: Any, audit: Any, *session: str) -> None:
        append(db, versions, audit, *session)
        in_transaction.set()  # the transaction holds its rows, uncommitted, until the test lets go
        assert release.wait(10)

    monkeypatch.setattr(persistence, "append_history", slow_append)
    writer = threading.Thread(target=lambda: api.put(f"{CANONICAL}/1", {"description": "x"}, headers=other))
    writer.start()
    try:
        assert in_transaction.wait(10)
        started = time.monotonic()
        assert api.get(f"{CANONICAL}/1/versions").status_code == 200
        assert api.get(f"{CANONICAL}/audit-logs?limit=5").json["total_count"] == 10
        written = api.get(f"{CANONICAL}/audit-logs", headers=other).json["total_count"]
        assert time.monotonic() - started < 2
        assert written == 10  # the session's write in progress is not seen before its commit
    finally:
        release.set()
        writer.join(10)
    assert api.get(f"{CANONICAL}/audit-logs", headers=other).json["total_count"] == 11


def test_a_file_in_a_folder_with_odd_characters_is_read_and_written(tmp_path: Path) -> None:
    """Readers open the file by URI: a name with spaces, '?', '#' or '%' is still the same file."""
    path = tmp_path / "a folder ?#%" / "state file.sqlite"
    api = opened(path)
    api.put(f"{CANONICAL}/2", {"description": "odd"})
    assert api.get(f"{CANONICAL}/2/versions").json["versions"][-1]["description"] == "odd"
    assert api.get(f"{CANONICAL}/2/audit-logs").json["total_count"] == 2
    api.mock.store.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["state file.sqlite"]  # nothing else made there
