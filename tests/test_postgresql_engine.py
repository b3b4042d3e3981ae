"""PostgresState (mockserver/storage/postgresql.py) against the tests' real PostgreSQL: what a state file
keeps, it keeps; two engines on one database behave as two processes; a server that goes away is a 503
that commits nothing, and the engine recovers by itself when it is back."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import CANONICAL, Api
from postgres import Cluster, Proxy, start_cluster
from test_state_file import every_write, whole

from mockserver import Settings, create_app
from mockserver.domain.store import Changes, MemoryHistory, State, StateNotSaved, Store
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage import postgresql as engine
from mockserver.storage import shared_log
from mockserver.storage.history import AUDIT_FILTERS
from mockserver.storage.postgresql import LOG_KEPT, PostgresHistory, PostgresState

pytestmark = pytest.mark.slow


def opened(url: str, **settings: Any) -> Api:
    """An app whose state is in the database at ``url`` (``--state postgresql://...``)."""
    return Api(create_app(Settings(state_url=as_url(url), **settings)))


def as_url(conninfo: str) -> str:
    """The ``postgresql://`` URL of a libpq connection string (the ``postgresql`` fixture gives one)."""
    if conninfo.startswith("postgresql://"):
        return conninfo
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    return f"postgresql://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"


def closed(api: Api) -> None:
    """Let go of the app's connections: its state's, and its shared journal's."""
    api.mock.journal.recorder.close()
    api.mock.store.close()


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def log_of(url: str, session: str = "") -> list[tuple[int, str]]:
    """The session's change log as the database keeps it: (n, kind)."""
    with connect(url) as db:
        rows = db.execute("SELECT n, data->>'kind' FROM changes WHERE session = %s ORDER BY n", (session,))
        return [(int(n), kind) for n, kind in rows.fetchall()]


def seeded(url: str, seed: State) -> tuple[PostgresState, Store]:
    """An engine on ``url`` and a store over it (seeding the database when it is empty)."""
    state = PostgresState(url)
    return state, Store(seed, persistence=state)


def loaded(url: str) -> State | None:
    """The state a process starting now would load (its history copied into memory)."""
    state = PostgresState(url)
    try:
        found = state.load()
        return None if found is None else found.copy()
    finally:
        state.close()


def edit(store: Store, profile_id: int, **fields: Any) -> None:
    with store.write() as state:
        state.put_profile({**state.profiles[profile_id], **fields})


# -- what is kept: a state file's behaviour -------------------------------------------------------------


def test_every_kind_of_write_survives_a_restart(postgresql: str) -> None:
    first = opened(postgresql)
    every_write(first)
    assert first.client.post("/__mock/snapshots/after-everything").status_code == 201
    first.get(f"{CANONICAL}/1", headers={"X-Mockserver-Session": "worker"})
    before = whole(first)
    closed(first)

    second = opened(postgresql)
    assert whole(second) == before
    assert [s["name"] for s in second.client.get("/__mock/snapshots").json["snapshots"]] == ["after-everything"]
    assert second.post(CANONICAL, {"name": "Next"}).json["access_profile"]["id"] == before["counters"]["profile"] + 1
    closed(second)


def test_a_write_writes_what_it_changed_and_one_log_row(postgresql: str, seed: State) -> None:
    state, store = seeded(postgresql, seed)
    with connect(postgresql) as db:
        before = db.execute("SELECT kind, key, row_version FROM records ORDER BY kind, key").fetchall()
        edit(store, 3, description="one change")
        after = db.execute("SELECT kind, key, row_version FROM records ORDER BY kind, key").fetchall()
        changed = [(k, key, v) for (k, key, v), old in zip(after, before, strict=True) if v != old[2]]
        assert changed == [("profile", "3", 2)]
        (data,) = db.execute("SELECT data FROM changes WHERE session = '' AND n = 2").fetchone() or (None,)
    profile = store.snapshot().profiles[3]
    assert data == {"kind": "write", "saved": [["profile", "3", profile]], "removed": [], "counters": None}
    assert log_of(postgresql) == [(1, "replace"), (2, "write")]
    assert state.seen == 2
    state.close()


def test_a_record_comes_back_with_its_fields_in_the_order_written(postgresql: str, seed: State) -> None:
    state, store = seeded(postgresql, seed)
    with store.write() as current:
        # Not the order of the fixtures, nor sorted: only a store that keeps the text gives it back.
        profile = current.profiles[2]
        reordered = {key: profile[key] for key in sorted(profile, key=lambda k: (len(k), k), reverse=True)}
        current.put_profile(reordered | {"zeta": {"b": 1, "a": [{"y": 2, "x": 1}]}})
    again = PostgresState(postgresql)
    loaded = again.load()
    assert loaded is not None
    assert list(loaded.profiles[2]) == [*reordered, "zeta"]
    assert list(loaded.profiles[2]["zeta"]) == ["b", "a"] and list(loaded.profiles[2]["zeta"]["a"][0]) == ["y", "x"]
    assert [list(user) for user in loaded.users.values()] == [list(user) for user in seed.users.values()]
    assert list(loaded.users) == list(seed.users)  # records of a kind in the order first written
    for engine_state in (state, again):
        engine_state.close()


def test_history_is_read_from_the_database_newest_audit_first(postgresql: str) -> None:
    first = opened(postgresql)
    for n in range(3):
        first.put(f"{CANONICAL}/2", {"description": f"edit {n}"})
    closed(first)

    second = opened(postgresql)
    with second.mock.store.atomic() as state:
        assert isinstance(state.history, PostgresHistory)
    versions = second.get(f"{CANONICAL}/2/versions").json["versions"]
    assert [v["description"] for v in versions[-3:]] == ["edit 0", "edit 1", "edit 2"]
    audit = second.get(f"{CANONICAL}/2/audit-logs?limit=2").json
    assert [json.loads(row["new_values"])["description"] for row in audit["audit_logs"]] == ["edit 2", "edit 1"]
    assert audit["total_count"] == 4  # the fixture's create row and three updates
    closed(second)


def test_a_snapshot_keeps_the_history_of_its_moment(postgresql: str) -> None:
    api = opened(postgresql)
    api.put(f"{CANONICAL}/2", {"description": "kept"})
    assert api.client.post("/__mock/snapshots/one").status_code == 201
    before = whole(api)
    api.put(f"{CANONICAL}/2", {"description": "dropped"})
    api.delete(f"{CANONICAL}/5")
    assert api.client.post("/__mock/snapshots/one/restore").status_code == 200
    assert whole(api) == before
    assert api.get(f"{CANONICAL}/2/versions").json["versions"][-1]["description"] == "kept"
    assert api.client.delete("/__mock/snapshots/one").status_code in (200, 204)
    assert api.client.get("/__mock/snapshots").json["snapshots"] == []
    closed(api)


def test_replace_and_snapshots_at_the_engine(postgresql: str, seed: State) -> None:
    state, store = seeded(postgresql, seed)
    assert state.save_snapshot("start", "2026-01-01T00:00:00Z", store.snapshot()) == 10
    edit(store, 1, name="Changed")
    assert state.snapshots() == {"start": ("2026-01-01T00:00:00Z", 10)}
    assert state.restore_snapshot("nothing-such") is None
    restored = state.restore_snapshot("start")
    assert restored is not None and restored == seed
    assert isinstance(restored.history, PostgresHistory) and restored.history.sizes() == seed.history.sizes()
    assert state.delete_snapshot("start") is True and state.delete_snapshot("start") is False
    assert state.snapshots() == {}
    emptied = state.replace(State.from_dict({**seed.to_dict(), "profiles": [], "versions": [], "audit": []}))
    assert emptied.profiles == {} and emptied.history.sizes() == (0, 0)
    assert [kind for _, kind in log_of(postgresql)] == ["replace", "write", "replace", "replace"]
    state.close()


def test_kept_counts_agree_with_the_rows_after_every_kind_of_change(postgresql: str) -> None:
    api = opened(postgresql)
    every_write(api)
    assert api.client.post("/__mock/snapshots/mid").status_code == 201
    api.put(f"{CANONICAL}/2", {"description": "after the snapshot"})
    assert api.client.post("/__mock/snapshots/mid/restore").status_code == 200
    api.put(f"{CANONICAL}/4", {"description": "after the restore"})
    in_memory = api.mock.store.snapshot()  # its history in memory, counted from the rows
    with api.mock.store.atomic() as state:
        kept = state.history
        assert isinstance(kept, PostgresHistory)
        _, audit_rows = in_memory.history.rows()
        actions = {row["action"] for row in audit_rows} | {"nothing-such"}
        users = {row["user_id"] for row in audit_rows if row["user_id"]} | {"u-nobody"}
        profiles = {row["access_profile_id"] for row in audit_rows if row["access_profile_id"]}
        for profile_id in [None, *profiles]:
            for action in [None, *actions]:
                for user_id in [None, *users]:
                    expected = in_memory.history.audit_page(profile_id, action, user_id, 5, 1)
                    assert kept.audit_page(profile_id, action, user_id, 5, 1) == expected, (profile_id, action, user_id)
        assert kept.sizes() == in_memory.history.sizes()
        assert kept.rows() == in_memory.history.rows()
    closed(api)


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_every_read_uses_an_index_matching_its_filter_and_order(postgresql: str, seed: State) -> None:
    """EXPLAIN of each history read and of the log's catch-up, on tables with enough rows that a scan
    would cost more: an index scan in the order asked for, no sequential scan, no sort."""
    state, _ = seeded(postgresql, seed)
    with connect(postgresql) as db:
        for session in ("", "other"):
            db.execute(
                "INSERT INTO audit (session, id, profile_id, action, user_id, data) SELECT %s, 1000 + i, i %% 97, "
                "(ARRAY['create', 'update', 'delete', 'clone'])[1 + i %% 4], 'u-' || (i %% 301), '{}' "
                "FROM generate_series(1, 20000) AS i",
                (session,),
            )
            db.execute(
                "INSERT INTO versions (session, id, profile_id, version, data) "
                "SELECT %s, 1000 + i, i %% 97, i, '{}' FROM generate_series(1, 20000) AS i",
                (session,),
            )
            db.execute(
                "INSERT INTO changes (session, n, data) SELECT %s, 100 + i, '{}' FROM generate_series(1, 5000) AS i",
                (session or "s",),
            )
            db.execute(
                "INSERT INTO history_counts (session, key, n) "
                "SELECT %s, 'key ' || i, i FROM generate_series(1, 20000) AS i",
                (session,),
            )
        db.execute("ANALYZE")
        reads: dict[str, tuple[str, tuple[Any, ...], list[set[str]]]] = {
            "versions of a profile": (engine.VERSIONS_SQL, ("", 1), [{"profile_id"}]),
            "one version": (engine.VERSION_SQL, ("", 1, 1), [{"profile_id", "version"}]),
            "a count": (engine.COUNT_SQL, ("", "x"), [{"key"}]),
            "the log after n": (engine.LOG_SQL, ("", 4990), [{"n"}]),
        }
        values = {"profile_id": 5, "action": "update", "user_id": "u-7"}
        for n in range(len(AUDIT_FILTERS) + 1):
            for used in itertools.combinations(AUDIT_FILTERS, n):
                others = set(used) - {"user_id"}
                wanted = [{"user_id"}, *([others] if others else [])] if "user_id" in used else [set(used) or {"id"}]
                parameters = ("", *(values[c] for c in used), 20, 40)
                reads[f"audit page by {used or 'nothing'}"] = (engine.audit_page_sql(used), parameters, wanted)
        indexes = dict(db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall())
        for name, (sql, parameters, columns) in reads.items():
            (found,) = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", parameters).fetchone() or (None,)
            nodes = list(_plan_nodes(found[0]["Plan"]))
            kinds = [node["Node Type"] for node in nodes]
            assert "Seq Scan" not in kinds and "Sort" not in kinds, f"{name}: {kinds}"
            scans = [node for node in nodes if node["Node Type"] in ("Index Scan", "Index Only Scan")]
            assert scans, f"{name}: {kinds}"
            definition = indexes[scans[0]["Index Name"]]
            searched = definition[definition.index("(") + 1 : -1].split(", ")
            assert searched[0] == "session", f"{name}: {definition}"
            assert any(choice <= set(searched) for choice in columns), f"{name}: {definition}"
    state.close()


def test_sessions_are_kept_listed_and_dropped(postgresql: str, seed: State) -> None:
    state, _ = seeded(postgresql, seed)
    one = state.view("one")
    one.created_at = "2026-01-02T00:00:00Z"
    one.chaos = {"latency_ms": 5}
    Store(seed, persistence=one)
    two = state.view("two")
    two.created_at = "2026-01-01T00:00:00Z"
    Store(seed, persistence=two)
    one.set_chaos({"error_rate": 0.5})
    listed = state.sessions()
    assert [(s.name, s.created_at, s.chaos) for s in listed] == [
        ("two", "2026-01-01T00:00:00Z", {}),
        ("one", "2026-01-02T00:00:00Z", {"error_rate": 0.5}),
    ]
    assert state.view("one").load() == seed  # another view of the same session reads it back

    one.drop()
    assert [s.name for s in state.sessions()] == ["two"]
    assert state.view("one").load() is None
    with pytest.raises(StateNotSaved, match="the session 'one' was deleted"):
        one.save(Changes([], [], [], [], {"profile": 99}))
    assert log_of(postgresql, "one") == [(3, "dropped")]  # after replace and chaos: only the last row stays
    with connect(postgresql) as db:
        for table in ("records", "versions", "audit", "history_counts", "sessions"):
            column = "name" if table == "sessions" else "session"
            assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'one'").fetchone() == (0,), table
    state.close()


def test_fresh_empties_every_session_and_tells_the_others(postgresql: str, seed: State) -> None:
    state, store = seeded(postgresql, seed)
    edit(store, 1, name="Gone after fresh")
    session = state.view("named")
    Store(seed, persistence=session)
    state.save_snapshot("kept", "2026-01-01T00:00:00Z", store.snapshot())

    again = PostgresState(postgresql, fresh=True)
    assert again.load() is None and again.sessions() == []
    assert again.snapshots() == {"kept": ("2026-01-01T00:00:00Z", 10)}  # the default state's, as a file keeps
    assert [entry.data["kind"] for entry in state.missed()] == ["replace"]
    assert [entry.data for entry in session.missed()] == [{"kind": "dropped", "expired": False}]
    fresh_store = Store(seed, persistence=again)
    assert fresh_store.created and fresh_store.snapshot() == seed
    for each in (state, again):
        each.close()


# -- two engines on one database: two processes ---------------------------------------------------------


def test_the_first_of_several_on_an_empty_database_seeds_it_once(postgresql: str, seed: State) -> None:
    start = threading.Barrier(4)
    stores: list[Store | BaseException] = []
    engines: list[PostgresState] = []

    def instance() -> None:
        try:
            state = PostgresState(postgresql)
            engines.append(state)
            start.wait()
            stores.append(Store(seed, persistence=state))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            stores.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(store, Store) for store in stores), stores
    assert sorted(store.created for store in stores if isinstance(store, Store)) == [False, False, False, True]
    assert log_of(postgresql) == [(1, "replace")]
    assert all(store.snapshot() == seed for store in stores if isinstance(store, Store))
    for state in engines:
        state.close()


def test_writing_of_a_session_waits_for_the_others_and_sees_its_rows(postgresql: str, seed: State) -> None:
    first, _ = seeded(postgresql, seed)
    second, _ = seeded(postgresql, seed)
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []
    waited: list[list[engine.LogEntry]] = []

    def hold() -> None:
        with first.writing() as entries:
            assert entries == []
            first.set_chaos({"latency_ms": 1})
            inside.set()
            assert release.wait(10)
            order.append("first commits")

    def wait() -> None:
        with second.writing() as entries:
            order.append("second holds the lock")
            waited.append(entries)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    waiter = threading.Thread(target=wait)
    try:
        # Another session is not held up: its lock is another one (a third process: one writer each).
        third = PostgresState(postgresql)
        started = time.monotonic()
        Store(seed, persistence=third.view("elsewhere"))
        assert time.monotonic() - started < 5
        third.close()

        waiter.start()
        time.sleep(0.5)
        order.append("second still waits")
    finally:
        release.set()
        holder.join(10)
        waiter.join(10)
    assert order == ["second still waits", "first commits", "second holds the lock"]
    assert [(entry.n, entry.data) for entry in waited[0]] == [(2, {"kind": "chaos", "chaos": {"latency_ms": 1}})]
    for state in (first, second):
        state.close()


def test_a_write_that_waits_too_long_for_the_lock_is_a_503(
    postgresql: str, seed: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = seeded(postgresql, seed)
    monkeypatch.setattr(engine, "LOCK_WAIT_MS", 300)
    second, second_store = seeded(postgresql, seed)
    with first.writing():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="the state store is busy .* held this session's write lock"):
            edit(second_store, 1, description="waited too long")
        assert 0.3 <= time.monotonic() - started < 5
    edit(second_store, 1, description="its turn")  # the same connection, its transaction rolled back
    assert log_of(postgresql)[-1] == (2, "write")
    for state in (first, second):
        state.close()


def test_missed_is_the_others_rows_in_order_and_a_store_applies_them(postgresql: str, seed: State) -> None:
    first, first_store = seeded(postgresql, seed)
    second, second_store = seeded(postgresql, seed)
    assert second.missed() == []
    edit(first_store, 1, description="one")
    edit(first_store, 2, description="two")
    first.set_chaos({"error_rate": 0.25})
    assert first.missed() == []  # its own rows are not news to it
    rows = second.missed()
    assert [entry.n for entry in rows] == [2, 3, 4]
    assert [entry.data["kind"] for entry in rows] == ["write", "write", "chaos"]
    assert rows[0].data["saved"][0][2]["description"] == "one"
    assert second.missed() == rows  # nothing counts as seen until applied
    with second.writing() as entries:  # the same rows, under the lock
        assert entries == rows
    # The store applies them before it answers a read.
    with second_store.atomic() as state:
        assert (state.profiles[1]["description"], state.profiles[2]["description"]) == ("one", "two")
    assert second.seen == 4 and second.missed() == []
    edit(second_store, 3, description="three")  # written after catching up: n 5
    assert [(entry.n, entry.data["kind"]) for entry in first.missed()] == [(5, "write")]
    assert log_of(postgresql) == [(1, "replace"), (2, "write"), (3, "write"), (4, "chaos"), (5, "write")]
    for state in (first, second):
        state.close()


def test_a_log_keeps_its_last_rows_and_one_further_behind_loads_again(postgresql: str, seed: State) -> None:
    first, first_store = seeded(postgresql, seed)
    second, second_store = seeded(postgresql, seed)
    for n in range(LOG_KEPT + 5):
        first.set_chaos({"latency_ms": n})
    edit(first_store, 4, description="after many")
    with connect(postgresql) as db:
        found = db.execute("SELECT count(*), min(n), max(n) FROM changes WHERE session = ''").fetchone()
    # Rows 1 (the seed), 2 to LOG_KEPT + 6 (chaos) and LOG_KEPT + 7 (the edit): the last LOG_KEPT stay.
    assert found == (LOG_KEPT, 8, LOG_KEPT + 7)
    assert second.seen == 1
    missed = second.missed()
    assert missed[0].n == 8 > second.seen + 1  # rows 2 to 7 are gone: the store loads the session again
    with second_store.atomic() as state:
        assert state.profiles[4]["description"] == "after many"
    assert second.seen == LOG_KEPT + 7 and second.missed() == []
    for state in (first, second):
        state.close()


def test_concurrent_writes_through_two_engines_lose_nothing(postgresql: str, seed: State) -> None:
    """Each write reads the profile's version and writes the next one: linearizable per session, so every
    increment counts and the log has one row per write, without gaps."""
    engines = [seeded(postgresql, seed) for _ in range(2)]
    per_thread = 25

    def bump(store: Store) -> None:
        for _ in range(per_thread):
            with store.write() as state:
                profile = state.profiles[6]
                state.put_profile({**profile, "version": profile["version"] + 1})

    start = seed.profiles[6]["version"]
    threads = [threading.Thread(target=bump, args=(store,)) for _, store in engines for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for _, store in engines:
        assert store.snapshot().profiles[6]["version"] == start + 4 * per_thread
    assert [n for n, _ in log_of(postgresql)] == list(range(1, 4 * per_thread + 2))
    for state, _ in engines:
        state.close()


# -- faults ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A server of these tests alone: they stop it, which would fail other tests on the shared one."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def database(own_cluster: Cluster) -> Iterator[str]:
    """A new database on ``own_cluster``, as a URL with a password (trust accepts any), to check it is
    never shown."""
    name = f"fault_{time.monotonic_ns()}"
    with psycopg.connect(own_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://mock:s3cret-pw@127.0.0.1:{own_cluster.port}/{name}?connect_timeout=2"
    if _down(own_cluster):  # a test that failed while it was stopped
        own_cluster.start()
    with psycopg.connect(own_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _down(cluster: Cluster) -> bool:
    try:
        psycopg.connect(cluster.conninfo(), connect_timeout=2).close()
    except psycopg.OperationalError:
        return True
    return False


def stored(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """Every record and the default state's log, as committed."""
    with connect(url) as db:
        records = db.execute("SELECT session, kind, key, data::text FROM records ORDER BY 1, 2, 3").fetchall()
    return records, log_of(url)


def unavailable(call: Callable[[], Any]) -> str:
    with pytest.raises(StoreUnavailable) as raised:
        call()
    message = raised.value.message
    assert "s3cret-pw" not in message and "s3cret-pw" not in str(raised.value)
    return message


def test_a_stopped_server_is_a_503_that_commits_nothing_and_the_engine_recovers(
    own_cluster: Cluster, database: str, seed: State
) -> None:
    state, store = seeded(database, seed)
    edit(store, 1, description="before the stop")
    history = store.snapshot().history
    before = stored(database)

    own_cluster.stop()
    message = unavailable(lambda: edit(store, 1, description="while stopped"))
    assert message.startswith(f"the state store cannot be reached (PostgreSQL at 127.0.0.1:{own_cluster.port}/")
    assert message.endswith("; the change was not saved; nothing was changed")
    unavailable(state.load)
    unavailable(state.missed)
    unavailable(lambda: state.query(engine.VERSIONS_SQL, (1,)))
    unavailable(lambda: state.set_chaos({"latency_ms": 1}))

    own_cluster.start()
    # The same engine, not reopened: its broken connections are replaced on their next use.
    assert store.snapshot().profiles[1]["description"] == "before the stop"  # undone in memory too
    assert state.missed() == []
    assert state.query(engine.VERSIONS_SQL, (1,)) == history.versions(1)
    edit(store, 1, description="after the start")
    records, log = stored(database)
    assert log == [*before[1], (len(before[1]) + 1, "write")]  # the failed write left no row
    assert [r for r in records if r[2] != "1"] == [r for r in before[0] if r[2] != "1"]
    assert store.snapshot().profiles[1]["description"] == "after the start"
    state.close()


def test_a_server_restarted_between_two_calls_is_not_noticed(own_cluster: Cluster, database: str, seed: State) -> None:
    """Connections opened before a restart are broken; the first use of each is replaced once."""
    state, store = seeded(database, seed)
    assert state.sessions() == []
    own_cluster.stop()
    own_cluster.start()
    assert state.sessions() == []  # the reader: replaced
    edit(store, 2, description="after a restart")  # the writer: replaced before the transaction did anything
    assert loaded(database) == store.snapshot()
    state.close()


def test_the_writers_connection_terminated_mid_write_commits_nothing(
    postgresql: str, seed: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ended by the server once the write holds its lock, before its statement and COMMIT (sent together).
    Whether the client reads the server's last word (a terminated backend's error) or only the closed socket
    is a race, so the 503 says "not saved" or "may or may not have been saved"; the database has nothing."""
    state, store = seeded(postgresql, seed)
    before = stored(postgresql)
    save = PostgresState.save
    killed: list[int] = []

    def terminate_then_save(self: PostgresState, changes: Changes) -> None:
        writer = self._db._writer
        assert writer is not None
        with connect(postgresql) as admin:
            killed.append(writer.info.backend_pid)
            admin.execute("SELECT pg_terminate_backend(%s)", (writer.info.backend_pid,))
        save(self, changes)

    monkeypatch.setattr(PostgresState, "save", terminate_then_save)
    message = unavailable(lambda: edit(store, 5, description="never committed"))
    monkeypatch.setattr(PostgresState, "save", save)
    assert message.endswith((f"; {engine._NOT_SAVED}", f"; {engine._MAYBE_SAVED}"))

    assert killed and stored(postgresql) == before
    assert store.snapshot().profiles[5] == seed.profiles[5]
    edit(store, 5, description="committed")  # a new connection
    assert log_of(postgresql)[-1] == (2, "write")
    assert loaded(postgresql) == store.snapshot()
    state.close()


def test_a_connection_cut_after_the_write_before_its_commit_commits_nothing(
    postgres_cluster: Cluster, postgresql: str, seed: State
) -> None:
    name = psycopg.conninfo.conninfo_to_dict(postgresql)["dbname"]
    with Proxy(postgres_cluster.port) as proxy:
        state, store = seeded(proxy.url(str(name)), seed)
        before = stored(postgresql)
        cut = proxy.cut_on(b"INSERT INTO changes", b"COMMIT")  # the write reached the server; its commit did not
        with pytest.raises(StoreUnavailable):
            edit(store, 7, description="cut")
        assert cut.wait(5)
        assert stored(postgresql) == before
        edit(store, 7, description="after the cut")
        assert stored(postgresql)[1][-1] == (2, "write")
        state.close()


def test_a_reading_threads_broken_connection_is_replaced(postgresql: str, seed: State) -> None:
    state, _ = seeded(postgresql, seed)
    assert state.snapshots() == {}
    reader = state._db._readers.db
    with connect(postgresql) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (reader.info.backend_pid,))
    assert state.snapshots() == {}
    assert state._db._readers.db is not reader
    state.close()


def test_messages_name_the_server_never_the_password() -> None:
    url = "postgresql://mock:hunter2@db.example:6543/shared?sslmode=disable"
    assert engine.describe(url) == "PostgreSQL at db.example:6543/shared"
    assert engine.describe("host=/run/pg dbname=x password=hunter2") == "PostgreSQL at /run/pg:5432/x"
    port = 1  # nothing listens there
    with pytest.raises(StoreUnavailable) as raised:
        PostgresState(f"postgresql://mock:hunter2@127.0.0.1:{port}/x")
    assert "hunter2" not in str(raised.value) and "127.0.0.1:1/x" in str(raised.value)


def test_session_locks_are_64_bit_keys_every_process_agrees_on() -> None:
    names = ("", "a", "b", "worker-1", "worker-2")
    keys = [engine.session_lock(name) for name in names]
    assert len(set(keys)) == 5 and all(-(2**63) <= key < 2**63 for key in keys)
    assert engine.LAYOUT_LOCK not in keys
    # Another interpreter (another hash seed: Python's own hash() of a string would differ) finds the same.
    code = f"from mockserver.storage.postgresql import session_lock; print([session_lock(n) for n in {names!r}])"
    seeded_hash = {**os.environ, "PYTHONHASHSEED": "7"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=seeded_hash)
    assert other.stdout.strip() == str(keys)


def test_history_copy_is_the_rows_in_memory(postgresql: str, seed: State) -> None:
    state, store = seeded(postgresql, seed)
    edit(store, 1, description="x")
    with store.atomic() as current:
        copied = current.history.copy()
    assert isinstance(copied, MemoryHistory) and copied.sizes() == (10, 10)
    state.close()


# -- a server that stops answering: deadlines -------------------------------------------------------------


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadlines of a second or less, so that a hung server costs the tests little time."""
    monkeypatch.setattr(engine, "READ_S", 0.5)
    monkeypatch.setattr(engine, "LOCK_STEP_S", 1.0)
    monkeypatch.setattr(engine, "WRITE_S", 1.0)


def timed(call: Callable[[], Any]) -> tuple[str, float]:
    """The 503's message of ``call`` and how long it took to come."""
    started = time.monotonic()
    message = unavailable(call)
    return message, time.monotonic() - started


@pytest.mark.usefixtures("short_deadlines")
def test_a_server_that_stops_answering_is_a_503_within_the_deadline_and_the_engine_recovers(
    postgres_cluster: Cluster, postgresql: str, seed: State
) -> None:
    name = str(psycopg.conninfo.conninfo_to_dict(postgresql)["dbname"])
    with Proxy(postgres_cluster.port) as proxy:
        state, store = seeded(proxy.url(name), seed)
        edit(store, 3, description="before the hang")
        before = stored(postgresql)
        proxy.stalled.set()  # every byte held both ways; no connection closed
        try:
            message, waited = timed(state.missed)  # a read on an open connection
            assert message.endswith(f"(PostgreSQL at 127.0.0.1:{proxy.port}/{name}: no answer within 0.5 s)")
            assert waited < 2
            # A write's first round trip (trying its lock, which the server answers at once) has a read's deadline.
            message, waited = timed(lambda: edit(store, 3, description="during the hang"))
            assert "no answer within 0.5 s" in message and message.endswith(f"; {engine._NOT_SAVED}")
            assert waited < 2
            # The connections that timed out were thrown away; a new one cannot even be opened meanwhile.
            unavailable(state.missed)
        finally:
            proxy.stalled.clear()
        proxy.cut()
        assert stored(postgresql) == before
        assert store.snapshot().profiles[3]["description"] == "before the hang"
        assert state.missed() == []  # recovered by itself: new connections
        edit(store, 3, description="after the hang")
        assert stored(postgresql)[1] == [*before[1], (len(before[1]) + 1, "write")]
        assert loaded(postgresql) == store.snapshot()
        state.close()


@pytest.mark.usefixtures("short_deadlines")
def test_a_commit_that_gets_no_answer_may_have_been_saved_and_is_applied_once_it_was(
    postgres_cluster: Cluster, postgresql: str, seed: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay holds the write's statement and its COMMIT (the server hangs once the write holds its lock),
    the deadline ends the wait with a 503 that cannot say whether it was saved, then the relay delivers them
    after all: the write is committed, and the process that answered 503 applies it from the log like any
    other."""
    name = str(psycopg.conninfo.conninfo_to_dict(postgresql)["dbname"])
    with Proxy(postgres_cluster.port) as proxy:
        state, store = seeded(proxy.url(name), seed)
        before = stored(postgresql)
        save = PostgresState.save

        def hang_then_save(self: PostgresState, changes: Changes) -> None:
            proxy.stalled.set()  # the lock is held; the statement and the COMMIT are about to go
            save(self, changes)

        monkeypatch.setattr(PostgresState, "save", hang_then_save)
        try:
            message, waited = timed(lambda: edit(store, 6, description="maybe saved"))
        finally:
            monkeypatch.setattr(PostgresState, "save", save)
            proxy.stalled.clear()
        assert "no answer within 1 s" in message and message.endswith(f"; {engine._MAYBE_SAVED}")
        assert waited < 3
        for _ in range(100):  # the relay hands the COMMIT it held to the server
            if stored(postgresql)[1] != before[1]:
                break
            time.sleep(0.05)
        assert stored(postgresql)[1] == [*before[1], (len(before[1]) + 1, "write")]
        store.catch_up()
        assert store.snapshot().profiles[6]["description"] == "maybe saved"
        assert loaded(postgresql) == store.snapshot()
        edit(store, 6, description="then")
        assert stored(postgresql)[1][-1] == (len(before[1]) + 2, "write")
        state.close()


def test_the_watchdog_ends_only_calls_that_overran(postgresql: str) -> None:
    with connect(postgresql) as db, connect(postgresql) as other:
        watchdog = engine.Watchdog()
        with watchdog.watch(db, 0.3) as slow, watchdog.watch(other, 5) as quick:
            with pytest.raises(psycopg.OperationalError):
                db.execute("SELECT pg_sleep(3)")
            assert other.execute("SELECT 1").fetchone() == (1,)
        assert slow.fired and not quick.fired and db.broken and not other.broken
        with watchdog.watch(other, 0.2) as forgotten:
            watchdog.forget(other)  # about to be closed: never shut after this
            time.sleep(0.4)
        assert not forgotten.fired and other.execute("SELECT 2").fetchone() == (2,)
        with watchdog.watch(other, 0.2) as extended:
            watchdog.extend(extended, 3)  # a whole state's work joined the transaction
            assert other.execute("SELECT 3 FROM pg_sleep(0.5)").fetchone() == (3,)
        assert not extended.fired and extended.seconds == 3


@pytest.mark.usefixtures("short_deadlines")
def test_a_write_waiting_for_another_ones_lock_is_not_taken_for_a_hung_server(
    postgresql: str, seed: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers a write that finds the lock taken at once (a try); only then does the write wait in
    the lock's queue, as long as the server's lock wait, beyond the deadline of a server that says nothing."""
    monkeypatch.setattr(engine, "LOCK_STEP_S", 5.0)
    monkeypatch.setattr(engine, "WRITE_S", 5.0)  # the holder's
    first, _ = seeded(postgresql, seed)
    second, second_store = seeded(postgresql, seed)
    holding = threading.Event()

    def hold() -> None:
        with first.writing():
            holding.set()
            time.sleep(1.5)  # three times READ_S
            first.set_chaos({"latency_ms": 2})

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        edit(second_store, 4, description="after the wait")
        assert time.monotonic() - started >= 1
    finally:
        holder.join(10)
    assert [kind for _, kind in log_of(postgresql)[-2:]] == ["chaos", "write"]
    for state in (first, second):
        state.close()


def test_the_shared_journal_on_a_server_that_stops_answering_is_a_503_within_its_deadline(
    postgres_cluster: Cluster, postgresql: str, seed: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_log, "DEADLINE_S", 0.5)
    name = str(psycopg.conninfo.conninfo_to_dict(postgresql)["dbname"])
    PostgresState(as_url(postgresql)).close()  # the layout, as a starting mock makes it
    row = shared_log.LogRow("", "a", "2026-01-01T00:00:00Z", '{"n": 1}', 8)
    with Proxy(postgres_cluster.port) as proxy:
        log = shared_log.PostgresLog(proxy.url(name))
        log.append([row])
        assert log.count("") == 1
        proxy.stalled.set()
        try:
            for call in (lambda: log.append([row]), lambda: log.count("")):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="no answer within 0.5 s"):
                    call()
                assert time.monotonic() - started < 2
        finally:
            proxy.stalled.clear()
        proxy.cut()
        log.append([row])  # new connections
        assert log.count("") == 2
        log.close()
