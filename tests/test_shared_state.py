"""Several processes on one SQLite file (``--workers``), played by two apps in one process.

Each app is what a worker builds: ``create_app`` with ``workers=2`` over a file the test holds as
the parent would (``sqlite_file.hold``). The apps share nothing in memory: only the file and its
change log join them, so whatever one of them sees of the other's writes came through the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import CANONICAL, Api
from test_state_file import every_write
from werkzeug.test import TestResponse

from mockserver import Settings, create_app
from mockserver.server.sessions import Sessions
from mockserver.storage import sqlite as engine
from mockserver.storage import sqlite_file
from mockserver.storage.engines import open_state
from mockserver.storage.sqlite import SqliteState, StateFileError, hold

SESSION = "X-Mockserver-Session"


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    """A state file held as ``mockserver serve --workers`` holds it for its workers."""
    file = tmp_path / "state.sqlite"
    fd = hold(file)
    yield file
    os.close(fd)


def worker(path: Path, **settings: Any) -> Api:
    return Api(create_app(Settings(state=path, workers=2, **settings)))


@pytest.fixture
def two(path: Path) -> Iterator[tuple[Api, Api]]:
    a, b = worker(path), worker(path)
    yield a, b
    a.mock.store.close()
    b.mock.store.close()


def log_of(path: Path, session: str = "") -> list[tuple[int, dict[str, Any]]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT n, data FROM changes WHERE session = ? ORDER BY n", (session,)).fetchall()
    return [(n, json.loads(data)) for n, data in rows]


def whole(api: Api, session: str = "") -> dict[str, Any]:
    return api.client.get("/__mock/state", headers={SESSION: session} if session else {}).json  # type: ignore[no-any-return]


def in_threads(jobs: list[Callable[[], TestResponse]], threads: int = 8) -> list[TestResponse]:
    """Every job on a pool of threads, the first ones let go together."""
    go = threading.Event()

    def run(job: Callable[[], TestResponse]) -> TestResponse:
        go.wait(timeout=10)
        return job()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        go.set()
        return [future.result() for future in futures]


# -- one state --------------------------------------------------------------------------------------


def test_the_first_worker_seeds_the_state_and_the_next_loads_it(path: Path) -> None:
    a = worker(path)
    a.put(f"{CANONICAL}/1", {"description": "before the second worker"})
    b = worker(path)
    assert b.profile(1)["description"] == "before the second worker"
    assert [data["kind"] for _, data in log_of(path)] == ["replace", "write"]  # seeded once
    assert whole(a) == whole(b)


def test_every_write_through_one_app_is_read_through_the_other(two: tuple[Api, Api]) -> None:
    a, b = two
    created = a.post(CANONICAL, {"name": "Made in a", "budgets": [{"max_limit": 3, "reset_duration": "1d"}]})
    new_id = created.json["access_profile"]["id"]
    assert b.profile(new_id) == created.json["access_profile"]
    assert b.put(f"{CANONICAL}/{new_id}", {"description": "changed in b"}).status_code == 200
    assert a.profile(new_id)["description"] == "changed in b"
    assert a.post(f"{CANONICAL}/{new_id}/roles", {"role_ids": [7], "apply_to_existing": True}).status_code < 300
    assert b.delete(f"{CANONICAL}/2").status_code < 300
    assert a.get(f"{CANONICAL}/2").status_code == 404
    versions = a.get(f"{CANONICAL}/{new_id}/versions").json["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert b.get(f"{CANONICAL}/{new_id}/versions").json["versions"] == versions
    assert whole(a) == whole(b)
    # Ids go on from the shared counters, whichever app hands them out.
    assert b.post(CANONICAL, {"name": "Next"}).json["access_profile"]["id"] == new_id + 1
    assert a.post(CANONICAL, {"name": "After"}).json["access_profile"]["id"] == new_id + 2


def test_every_kind_of_write_is_made_in_the_other_app_as_it_was_made(two: tuple[Api, Api]) -> None:
    """Each collection in the same order, each counter the same: the other app applied the log rows."""
    a, b = two
    b.get(CANONICAL)  # b is up to date now, and will apply every row that follows
    every_write(a)
    assert whole(b) == whole(a)
    assert b.mock.store.persistence is not None and b.mock.store.persistence.seen == log_of(path_of(a))[-1][0]
    later = worker(path_of(a))  # and as a worker started now loads it
    assert whole(later) == whole(a)
    later.mock.store.close()


def test_a_process_further_behind_than_the_kept_log_loads_the_state_again(
    two: tuple[Api, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two
    monkeypatch.setattr(sqlite_file, "LOG_KEPT", 5)
    b.get(CANONICAL)
    held = b.mock.store._state
    for k in range(12):
        a.put(f"{CANONICAL}/{1 + k % 3}", {"description": f"edit {k}"})
    assert len(log_of(path_of(a))) == 5
    assert whole(b) == whole(a)
    assert b.mock.store._state is not held  # loaded whole: the rows it had not seen were gone
    a.put(f"{CANONICAL}/4", {"description": "one more"})
    assert b.profile(4)["description"] == "one more"


def test_concurrent_partial_puts_through_both_apps_lose_nothing(two: tuple[Api, Api]) -> None:
    a, b = two
    start = a.profile(1)["version"]
    rows = len(a.get(f"{CANONICAL}/1/versions").json["versions"])
    n = 40

    def update(api: Api, k: int) -> Callable[[], TestResponse]:
        return lambda: api.put(f"{CANONICAL}/1", {"description": f"edit {k}"})

    answers = in_threads([update(a if k % 2 else b, k) for k in range(n)])
    assert [r.status_code for r in answers] == [200] * n
    assert sorted(r.json["access_profile"]["version"] for r in answers) == list(range(start + 1, start + n + 1))
    for api in (a, b):
        assert api.profile(1)["version"] == start + n
        versions = api.get(f"{CANONICAL}/1/versions").json["versions"]
        assert len(versions) == rows + n
        assert [v["version"] for v in versions][-n - 1 :] == list(range(start, start + n + 1))


def test_concurrent_creates_of_one_name_give_one_201_and_ids_never_collide(two: tuple[Api, Api]) -> None:
    a, b = two
    same = in_threads([(lambda api=api: api.post(CANONICAL, {"name": "Only one"})) for api in [a, b] * 10])
    assert sorted(r.status_code for r in same) == [201] + [409] * 19
    distinct = in_threads([(lambda k=k: (a if k % 2 else b).post(CANONICAL, {"name": f"P {k}"})) for k in range(30)])
    assert {r.status_code for r in distinct} == {201}
    ids = [r.json["access_profile"]["id"] for r in distinct]
    ids.append(next(r for r in same if r.status_code == 201).json["access_profile"]["id"])
    assert len(set(ids)) == len(ids) == 31
    for api in (a, b):
        listed = api.get(f"{CANONICAL}?limit=100").json
        assert sorted(p["id"] for p in listed["access_profiles"] if p["id"] in ids) == sorted(ids)
        assert api.get(f"{CANONICAL}?search=Only one").json["total_count"] == 1


def test_reset_and_snapshots_are_shared(two: tuple[Api, Api]) -> None:
    a, b = two
    a.put(f"{CANONICAL}/1", {"description": "kept in the snapshot"})
    assert b.client.post("/__mock/snapshots/mid").status_code == 201  # b's state holds a's write
    assert [s["name"] for s in a.client.get("/__mock/snapshots").json["snapshots"]] == ["mid"]
    a.put(f"{CANONICAL}/1", {"description": "after the snapshot"})
    assert b.client.post("/__mock/reset").status_code == 200
    assert a.profile(1)["description"] != "after the snapshot"
    assert a.post(CANONICAL, {"name": "After the reset"}).json["access_profile"]["id"] == 11  # counters reset too
    assert a.client.post("/__mock/snapshots/mid/restore").status_code == 200
    assert b.profile(1)["description"] == "kept in the snapshot"
    assert b.get(f"{CANONICAL}/11").status_code == 404
    assert b.client.post("/__mock/reset?empty=true").status_code == 200
    assert a.get(CANONICAL).json["total_count"] == 0
    assert whole(a) == whole(b)


# -- sessions ---------------------------------------------------------------------------------------


def registry(api: Api) -> Sessions:
    return api.app.extensions["mockserver.sessions"]  # type: ignore[no-any-return]


def test_a_session_made_through_one_app_is_found_through_the_other(two: tuple[Api, Api]) -> None:
    a, b = two
    header = {SESSION: "shared"}
    made = a.post(CANONICAL, {"name": "In the session"}, headers=header)
    assert made.status_code == 201
    assert b.profile(1) == a.profile(1)  # the default state is untouched
    found = b.get(f"{CANONICAL}/{made.json['access_profile']['id']}", headers=header)
    assert found.status_code == 200 and found.json["access_profile"]["name"] == "In the session"
    assert b.get(f"{CANONICAL}?search=In the session").json["total_count"] == 0
    assert [data["kind"] for _, data in log_of(path_of(a), "shared")] == ["replace", "write"]  # made once
    assert [s["name"] for s in b.client.get("/__mock/sessions").json["sessions"]] == ["shared"]


def path_of(api: Api) -> Path:
    assert api.mock.settings.state is not None
    return api.mock.settings.state


def test_concurrent_first_requests_of_one_session_through_both_apps_make_it_once(two: tuple[Api, Api]) -> None:
    a, b = two
    header = {SESSION: "raced"}
    answers = in_threads(
        [
            (lambda api=api, k=k: api.post(CANONICAL, {"name": f"R {k}"}, headers=header))
            for k, api in enumerate([a, b] * 6)
        ]
    )
    assert {r.status_code for r in answers} == {201}
    assert sorted(r.json["access_profile"]["id"] for r in answers) == list(range(11, 23))
    assert [data["kind"] for _, data in log_of(path_of(a), "raced")][:1] == ["replace"]
    assert sum(data["kind"] == "replace" for _, data in log_of(path_of(a), "raced")) == 1


def test_chaos_reset_snapshot_and_deletion_of_a_session_are_seen_through_the_other(two: tuple[Api, Api]) -> None:
    a, b = two
    header = {SESSION: "s"}
    created = a.client.put("/__mock/sessions/s", json={"latency_ms": 5})
    assert created.status_code == 201
    again = b.client.put("/__mock/sessions/s", json={"latency_ms": 7, "seed": 3})
    assert again.status_code == 200  # b found it made
    assert a.client.get("/__mock/sessions/s").json["chaos"]["latency_ms"] == 7
    assert a.get(CANONICAL, headers=header).status_code == 200
    assert registry(a).get("s").mock.chaos.latency_ms == 7  # type: ignore[union-attr]

    a.put(f"{CANONICAL}/3", {"description": "in s"}, headers=header)
    assert b.client.post("/__mock/snapshots/one", headers=header).status_code == 201
    a.put(f"{CANONICAL}/3", {"description": "later in s"}, headers=header)
    assert b.client.post("/__mock/reset", headers=header).status_code == 200
    assert a.get(f"{CANONICAL}/3", headers=header).json["access_profile"] == b.profile(3)  # as in the fixtures
    assert a.client.post("/__mock/snapshots/one/restore", headers=header).status_code == 200
    assert b.get(f"{CANONICAL}/3", headers=header).json["access_profile"]["description"] == "in s"

    assert b.client.delete("/__mock/sessions/s").status_code == 200
    assert a.client.get("/__mock/sessions/s").status_code == 404
    assert a.client.get("/__mock/sessions").json["sessions"] == []
    # The next request makes it again from the fixtures, as for a session that never was.
    assert a.get(f"{CANONICAL}/3", headers=header).json["access_profile"]["description"] == b.profile(3)["description"]
    assert b.get(f"{CANONICAL}/3", headers=header).json["access_profile"] == b.profile(3)
    assert a.client.delete("/__mock/sessions/s").status_code == 200
    assert b.client.delete("/__mock/sessions/s").status_code == 404


def test_a_session_used_through_one_app_does_not_expire_through_the_other(path: Path) -> None:
    a, b = worker(path, session_ttl=60), worker(path, session_ttl=60)
    clock = Clock()
    for api in (a, b):
        registry(api).clock = clock
        registry(api)._started = clock.now
    header = {SESSION: "busy"}
    assert a.post(CANONICAL, {"name": "Busy"}, headers=header).status_code == 201
    clock.now += 50
    assert b.get(CANONICAL, headers=header).status_code == 200  # a read records the use
    clock.now += 20  # a's own last use is 70 s ago, b's 20 s
    answer = a.get(CANONICAL, headers=header)
    assert answer.status_code == 200, answer.json
    assert answer.json["total_count"] == 11
    clock.now += 61
    answer = b.get(CANONICAL, headers=header)
    assert answer.status_code == 410 and answer.json["error"]["type"] == "gone"
    assert a.get(CANONICAL, headers=header).status_code == 410  # told through the change log
    assert [data for _, data in log_of(path, "busy")] == [{"kind": "dropped", "expired": True}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# -- trouble ------------------------------------------------------------------------------------------


@pytest.fixture
def failing_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """While the flag is set, every save fails half-way through its transaction."""
    failing = [False]
    append = engine.append_history

    def append_or_fail(db: sqlite3.Connection, versions: Any, audit: Any, *session: str) -> None:
        append(db, versions, audit, *session)
        if failing[0]:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(engine, "append_history", append_or_fail)
    yield failing


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda api: api.put(f"{CANONICAL}/1", {"name": "Not saved"}), id="update"),
        pytest.param(lambda api: api.post(CANONICAL, {"name": "Not saved"}), id="create"),
        pytest.param(lambda api: api.client.post("/__mock/reset"), id="reset"),
    ],
)
def test_a_failed_save_changes_nothing_in_either_app(
    two: tuple[Api, Api], failing_disk: list[bool], write: Callable[[Api], TestResponse]
) -> None:
    a, b = two
    b.put(f"{CANONICAL}/1", {"description": "saved before the failure"})
    before, log = whole(a), log_of(path_of(a))
    failing_disk[0] = True
    refused = write(a)
    failing_disk[0] = False
    assert refused.status_code == 500
    assert "nothing was changed" in refused.json["error"]["message"]
    assert whole(a) == whole(b) == before
    assert log_of(path_of(a)) == log
    assert b.post(CANONICAL, {"name": "Saved"}).json["access_profile"]["id"] == before["counters"]["profile"] + 1


def test_a_removed_file_refuses_writes_in_both_apps(two: tuple[Api, Api]) -> None:
    a, b = two
    before = a.profile(1)
    for file in path_of(a).parent.glob(path_of(a).name + "*"):
        file.unlink()
    for api in (a, b):
        refused = api.put(f"{CANONICAL}/1", {"name": "Into the void"})
        assert refused.status_code == 500
        assert refused.json["error"]["message"].endswith("was removed; the change was not saved; nothing was changed")
        assert api.profile(1) == before


# -- the file --------------------------------------------------------------------------------------


def test_a_held_file_is_refused_to_another_holder_and_to_a_single_process(path: Path) -> None:
    with pytest.raises(StateFileError, match=f"{path} is in use by another mockserver"):
        hold(path)
    with pytest.raises(StateFileError, match=f"{path} is in use by another mockserver"):
        SqliteState(path)
    assert open_state(Settings(state=path, workers=2)) is not None


def test_hold_fresh_drops_the_sessions_and_the_first_worker_seeds_again(tmp_path: Path) -> None:
    file = tmp_path / "state.sqlite"
    fd = hold(file)
    a = worker(file)
    a.put(f"{CANONICAL}/1", {"description": "before fresh"})
    a.post(CANONICAL, {"name": "x"}, headers={SESSION: "gone"})
    a.client.post("/__mock/snapshots/kept")
    a.mock.store.close()
    os.close(fd)
    fd = hold(file, fresh=True)
    try:
        b, c = worker(file, fresh=True), worker(file, fresh=True)  # a worker leaves --fresh to the parent
        assert b.profile(1)["description"] != "before fresh"
        assert c.put(f"{CANONICAL}/1", {"description": "after fresh"}).status_code == 200
        assert b.profile(1)["description"] == "after fresh"
        assert b.client.get("/__mock/sessions").json["sessions"] == []
        assert [s["name"] for s in c.client.get("/__mock/snapshots").json["snapshots"]] == ["kept"]
        assert [data["kind"] for _, data in log_of(file)] == ["replace", "write"]
    finally:
        os.close(fd)


def test_the_catch_up_query_searches_the_primary_key(two: tuple[Api, Api]) -> None:
    a, _ = two
    with sqlite3.connect(path_of(a)) as db:
        plan = [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sqlite_file.CATCH_UP_SQL}", ("", 1))]
    assert plan == ["SEARCH changes USING PRIMARY KEY (session=? AND n>?)"]


def test_a_read_asks_for_log_rows_only_after_a_commit_and_sees_every_commit_on_every_thread(
    two: tuple[Api, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-up's query is skipped while the file's data_version stays the same; a write of another
    worker, or of this one, changes it for every thread's reading connection."""
    a, b = two
    asked: list[int] = []
    missed = SqliteState.missed

    def counted(self: SqliteState) -> list[Any]:
        asked.append(threading.get_ident())
        return missed(self)

    monkeypatch.setattr(SqliteState, "missed", counted)

    def on_threads(api: Api) -> list[str]:
        """The description of profile 1 as read on three threads of their own (each its own connection)."""
        found: list[str] = []
        for _ in range(3):
            thread = threading.Thread(target=lambda: found.append(api.profile(1)["description"]))
            thread.start()
            thread.join()
        return found

    pool = ThreadPoolExecutor(max_workers=1)  # one thread that reads again and again (its connection stays)

    def read(api: Api) -> str:
        return pool.submit(lambda: api.profile(1)["description"]).result()  # type: ignore[no-any-return]

    read(a)
    asked.clear()
    assert [read(a) for _ in range(5)] == [read(a)] * 5
    assert asked == []  # nothing committed since: no query
    b.put(f"{CANONICAL}/1", {"description": "from b"})
    assert read(a) == "from b"
    assert len(asked) == 1
    assert on_threads(a) == ["from b"] * 3
    a.put(f"{CANONICAL}/1", {"description": "from a"})  # this process's own writing connection
    assert read(a) == "from a"
    assert read(b) == "from a"
    assert on_threads(b) == ["from a"] * 3
    b.put(f"{CANONICAL}/1", {"description": "from b again"})
    asked.clear()
    assert read(a) == "from b again"
    assert asked  # looked for it
    pool.shutdown()


def test_data_version_changes_for_another_process_and_for_this_process_s_writer(path: Path) -> None:
    state = SqliteState(path, shared=True)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        first = state._file.data_version()
        assert state._file.data_version() == first  # nothing committed
        other.execute("INSERT INTO meta (key, value) VALUES ('test', 'a')")  # another process's commit
        second = state._file.data_version()
        assert second[0] == first[0] and second[1] != first[1]
        with state._file.transaction() as db:  # this process's writing connection
            db.execute("UPDATE meta SET value = 'b' WHERE key = 'test'")
        assert state._file.data_version()[1] != second[1]
    finally:
        other.close()
        state.close()


def test_a_single_process_asks_for_no_log_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --workers the file has one process: no read or write asks for other processes' rows."""
    asked: list[str] = []
    monkeypatch.setattr(SqliteState, "missed", lambda self: asked.append("missed") or [])
    api = Api(create_app(Settings(state=tmp_path / "state.sqlite")))
    api.put(f"{CANONICAL}/1", {"description": "alone"})
    api.get(f"{CANONICAL}/1", headers={SESSION: "one"})
    assert api.profile(1)["description"] == "alone"
    assert asked == []
    assert api.mock.store.shared is False
    api.mock.store.close()


def test_a_file_another_worker_keeps_busy_is_a_503_and_changes_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_file, "BUSY_MS", 200)
    a = worker(path)
    before = whole(a)
    with sqlite3.connect(path, isolation_level=None) as stuck:
        stuck.execute("BEGIN IMMEDIATE")  # a worker that holds the write lock, and holds it
        refused = a.put(f"{CANONICAL}/1", {"description": "waited too long"})
        assert refused.status_code == 503
        assert refused.json["error"]["type"] == "state_store_unavailable"
        assert "busy" in refused.json["error"]["message"] and "nothing was changed" in refused.json["error"]["message"]
        assert a.get(f"{CANONICAL}/1").status_code == 200  # reads go on
        stuck.execute("ROLLBACK")
    assert whole(a) == before
    assert a.put(f"{CANONICAL}/1", {"description": "once it is free"}).status_code == 200
    a.mock.store.close()


def test_forked_workers_hand_out_different_random_ids() -> None:
    """A worker forked after the parent imported the store draws its own ids, not its siblings'."""
    from mockserver.domain import store

    readers = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one id, then out at once
            os.write(write, store._random_uuid().encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            readers.append(pipe.read())
    assert len(set(readers)) == 2 and store._random_uuid() not in readers


def _worker_process(path: Path, name: str, results: Any) -> None:
    """A worker process: its own app over the held file, a burst of writes, the statuses sent back."""
    api = worker(path)
    statuses = [api.put(f"{CANONICAL}/1", {"description": f"{name} {k}"}).status_code for k in range(15)]
    statuses.append(api.post(CANONICAL, {"name": "Made by one process"}).status_code)
    created = api.post(CANONICAL, {"name": f"Made by {name}"})
    results.put((name, statuses, created.json["access_profile"]["id"]))
    api.mock.store.close()


def test_worker_processes_on_one_held_file_lose_no_update(path: Path) -> None:
    """Real processes, forked as a server forks its workers: each has its connections, the parent the lock."""
    import multiprocessing

    start = worker(path)
    version = start.profile(1)["version"]
    start.mock.store.close()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_worker_process, args=(path, f"w{k}", results)) for k in range(3)]
    for process in processes:
        process.start()
    found = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert all(statuses[:15] == [200] * 15 for _, statuses, _ in found)
    assert sorted(statuses[15] for _, statuses, _ in found) == [201, 409, 409]
    assert len({new_id for _, _, new_id in found}) == 3
    after = worker(path)
    assert after.profile(1)["version"] == version + 45
    assert len(after.get(f"{CANONICAL}/1/versions").json["versions"]) >= 45
    after.mock.store.close()
