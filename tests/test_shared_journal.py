"""A shared state's journal and violations (issue 24): every instance's, in one database, on both engines.

Two kinds of test: ``SharedLog`` objects standing for instances on one database (the rows, polling
with concurrent writers, the bounds, a database away), and two apps over one database (what the control
API and the inspector read). Both run on a SQLite file and on a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CANONICAL, Api
from flask import Flask
from postgres import Cluster, Proxy

from mockserver import Settings, create_app
from mockserver.domain.timeutil import format_timestamp
from mockserver.server import journal as shared_journal
from mockserver.server.context import SharedViolations, Violation
from mockserver.server.journal import Budget, Entry, Recorder, SharedJournal, entry_row, row_entry
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage import postgresql, shared_log
from mockserver.storage.shared_log import LogRow, PostgresLog, SharedLog, SqliteLog
from mockserver.storage.sqlite_file import StateFile

ENGINES = ["sqlite", "postgresql"]
AUTH = {"Authorization": "Bearer dev-token"}


class Database:
    """One database of an engine, and the ``SharedLog`` objects opened on it (closed after the test)."""

    def __init__(self, engine: str, where: str) -> None:
        self.engine = engine
        self.where = where  # a file's path, or a libpq connection string
        self.opened: list[SharedLog] = []

    def log(self) -> SharedLog:
        opened: SharedLog = SqliteLog(Path(self.where)) if self.engine == "sqlite" else PostgresLog(self.where)
        self.opened.append(opened)
        return opened

    def create_tables(self) -> None:
        """The engine's layout, as a mock starting on an empty database makes it (the tables live there)."""
        if self.engine == "sqlite":
            state = StateFile(Path(self.where))
            try:
                state.prepare(fresh=False)
            finally:
                state.close()
            return
        import psycopg

        with psycopg.connect(self.where, autocommit=True) as db:
            postgresql.prepare(db)

    def settings(self, **fields: Any) -> Settings:
        """Settings of an instance of a shared state on this database."""
        if self.engine == "sqlite":
            return Settings(state=Path(self.where), workers=2, **fields)
        return Settings(state_url=self.where, **fields)


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
        found = Database("sqlite", str(path))
    else:
        conninfo = request.getfixturevalue("postgresql")
        cluster = request.getfixturevalue("postgres_cluster")
        found = Database("postgresql", cluster.url(conninfo.rsplit("dbname=", 1)[1]))
    yield found
    for opened in found.opened:
        opened.close()


@pytest.fixture
def tables(database: Database) -> Database:
    database.create_tables()
    return database


def row(session: str, instance: str, n: int, size: int = 10) -> LogRow:
    return LogRow(session, instance, f"2026-12-03T10:00:{n % 60:02d}Z", json.dumps({"n": n}), size)


def numbers(rows: list[LogRow]) -> list[int]:
    return [json.loads(r.data)["n"] for r in rows]


# -- the rows ------------------------------------------------------------------------------------------


def test_two_instances_rows_are_read_in_one_order_by_either(tables: Database) -> None:
    a, b = tables.log(), tables.log()
    a.append([row("", "a", 1), row("", "a", 2)])
    b.append([row("", "b", 3)])
    a.append([row("other", "a", 4)])
    b.append([row("", "b", 5)])
    for reader in (a, b):
        found = reader.after("", 0, 100)
        assert numbers(found) == [1, 2, 3, 5]
        assert [r.instance for r in found] == ["a", "a", "b", "b"]
        assert [r.seq for r in found] == sorted(r.seq for r in found)
        assert numbers(reader.after("other", 0, 100)) == [4]
    seqs = [r.seq for r in a.after("", 0, 100)]
    assert numbers(b.after("", seqs[1], 100)) == [3, 5]
    assert numbers(b.after("", 0, 2)) == [1, 2]  # the limit keeps the oldest
    assert numbers(a.newest("", 2)) == [3, 5]  # the newest, oldest first
    found_row = b.row("", seqs[2])
    assert found_row is not None and found_row.instance == "b" and json.loads(found_row.data) == {"n": 3}
    assert b.row("other", seqs[2]) is None  # another session's seq
    assert (a.count(""), a.count("other"), a.count("none")) == (4, 1, 0)
    # The oldest row of the session, and the newest of the whole journal (row 5, written last).
    assert a.window("") == shared_log.Window(oldest=seqs[0], last=seqs[-1])


def test_a_cleared_session_keeps_its_numbers_going(tables: Database) -> None:
    a, b = tables.log(), tables.log()
    a.append([row("", "a", n) for n in range(3)])
    b.append([row("kept", "b", 9)])
    held = max(r.seq for r in a.after("", 0, 100))
    assert b.clear("") == 3
    assert a.after("", 0, 100) == [] and a.count("kept") == 1
    window = a.window("")
    assert window.oldest > held  # a reader drops every entry it holds of this session
    assert b.clear("kept") == 1
    assert a.window("").oldest > held  # also with no row left at all
    a.append([row("", "a", 7)])
    [again] = a.after("", 0, 100)
    assert again.seq > held


def test_each_session_keeps_its_last_rows(tables: Database) -> None:
    log = tables.log()
    log.append([row("one", "a", n) for n in range(10)] + [row("two", "a", n) for n in range(3)])
    gone = log.keep_last(["one", "two"], 4)
    assert dict(gone) == {"one": 6}
    assert numbers(log.after("one", 0, 100)) == [6, 7, 8, 9]
    assert numbers(log.after("two", 0, 100)) == [0, 1, 2]
    assert log.keep_last(["one"], 4) == {}


def test_an_append_keeps_the_last_rows_of_the_sessions_it_writes_to_in_its_own_transaction(tables: Database) -> None:
    log, reader = tables.log(), tables.log()
    log.append([row("one", "a", n) for n in range(3)] + [row("other", "a", 9)])
    gone = log.append([row("one", "a", n) for n in range(3, 6)] + [row("two", "a", 0)], keep=4)
    assert dict(gone) == {"one": 2}  # "other" was not written to: it keeps its rows whatever their number
    assert numbers(reader.after("one", 0, 100)) == [2, 3, 4, 5]
    assert (reader.count("two"), reader.count("other")) == (1, 1)
    assert log.append([row("two", "a", 1)], keep=4) == {}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_look_at_the_byte_budget_within_it_does_not_wait_for_the_files_writer(tables: Database) -> None:
    log = tables.log()
    log.append([row("", "a", n, 100) for n in range(3)])
    with sqlite3.connect(tables.where, isolation_level=None) as writer:
        writer.execute("BEGIN IMMEDIATE")  # a store's write holding the file's write lock
        started = time.monotonic()
        assert log.keep_bytes(300) == {}
        assert time.monotonic() - started < 1
        writer.execute("ROLLBACK")
    assert dict(log.keep_bytes(250)) == {"": 1}


def test_the_byte_budget_drops_the_oldest_rows_of_all_sessions(tables: Database) -> None:
    log = tables.log()
    log.append([row("one", "a", 0, 100), row("two", "b", 1, 100), row("one", "a", 2, 100)])
    log.append([row("two", "b", 3, 100), row("one", "a", 4, 100)])
    assert log.used_bytes() == 500
    gone = log.keep_bytes(250)
    assert dict(gone) == {"one": 2, "two": 1}  # rows 0, 1 and 2: the two newest fit in 250 bytes
    assert log.used_bytes() == 200
    assert numbers(log.after("one", 0, 9)) == [4] and numbers(log.after("two", 0, 9)) == [3]
    assert log.keep_bytes(200) == {}  # within the budget: nothing goes


def test_violations_are_shared_bounded_and_cleared(tables: Database) -> None:
    a, b = tables.log(), tables.log()
    for n in range(5):
        assert (a if n % 2 else b).add_violation(row("s", "a" if n % 2 else "b", n), keep=3) == (1 if n >= 3 else 0)
    a.add_violation(row("", "a", 99), keep=3)
    found = b.violations("s", 10)
    assert numbers(found) == [2, 3, 4] and [r.instance for r in found] == ["b", "a", "b"]
    assert numbers(b.violations("s", 2)) == [3, 4]
    assert (a.count_violations("s"), a.count_violations("")) == (3, 1)
    b.clear_violations("s")
    assert a.violations("s", 10) == [] and a.count_violations("") == 1


# -- polling never skips a row -------------------------------------------------------------------------


def test_polling_with_concurrent_writers_never_skips_a_row(tables: Database) -> None:
    """Writers append batches at once; a reader polls with ``after`` as the inspector does, moving its
    cursor to ``last``. Every row written must reach it, whichever order the inserts commit in."""
    writers, batches = 4, 40
    reader = SharedJournal(Recorder(tables.log(), "reader", Budget()), None)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        log = tables.log()
        try:
            for b in range(batches):
                log.append([entry_row(entry(f"/{n}/{b}/{i}"), "", f"w{n}") for i in range(1 + (b + n) % 4)])
        except BaseException as exc:
            failures.append(exc)

    seen: list[int] = []
    cursor = 0

    def poll() -> None:
        nonlocal cursor
        listing = reader.listing(after=cursor)
        seen.extend(e.seq for e in listing.entries)
        assert all(e.seq > cursor for e in listing.entries)
        cursor = listing.last

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        poll()
    for thread in threads:
        thread.join()
    poll()
    assert not failures, failures
    everything = [r.seq for r in tables.log().after("", 0, 100_000)]
    assert len(everything) == sum(1 + (b + n) % 4 for n in range(writers) for b in range(batches))
    assert sorted(seen) == everything  # each once, none skipped


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_row_committed_late_is_never_passed_over(tables: Database) -> None:
    """PostgreSQL hands out seqs at insert time; an append holding seq N must hold back the rows after
    it, so that no reader moves its cursor past N before N is visible."""
    import psycopg

    log, reader = tables.log(), tables.log()
    log.append([row("", "a", 0)])
    with psycopg.connect(tables.where) as slow:  # an instance in the middle of its append
        slow.execute("SELECT pg_advisory_xact_lock(%s, %s)", shared_log.ORDER_LOCK)
        (late,) = slow.execute(
            "INSERT INTO journal (session, instance, at, size, data) VALUES ('', 'slow', 'now', 1, '{\"n\": 1}') "
            "RETURNING seq"
        ).fetchone()  # type: ignore[misc]
        other = threading.Thread(target=log.append, args=([row("", "a", 2)],))
        other.start()
        time.sleep(0.5)
        assert other.is_alive()  # waits for the slow append: its seq will come after
        window = reader.window("")
        assert window.last < late
        assert numbers(reader.after("", 0, 9)) == [0]
        slow.commit()
    other.join(timeout=10)
    found = reader.after("", window.last, 9)
    assert numbers(found) == [1, 2] and found[0].seq == late < found[1].seq


# -- a database away -----------------------------------------------------------------------------------


def test_a_log_that_cannot_reach_its_database_raises_and_recovers(
    database: Database, postgres_cluster: Cluster, tmp_path: Path
) -> None:
    if database.engine == "sqlite":
        folder = tmp_path / "later"
        away: SharedLog = SqliteLog(folder / "state.db")
        with pytest.raises(StoreUnavailable, match="cannot be used"):
            away.append([row("", "a", 1)])
        folder.mkdir()
        later = Database("sqlite", str(folder / "state.db"))
        sqlite3.connect(later.where).close()
        later.create_tables()
        away.append([row("", "a", 2)])  # the next call connects again
        assert numbers(away.after("", 0, 9)) == [2]
        away.close()
        return
    database.create_tables()
    dbname = database.where.rsplit("/", 1)[1]
    with Proxy(postgres_cluster.port) as relay:
        away = PostgresLog(relay.conninfo(dbname))
        try:
            away.append([row("", "a", 1)])
            relay.cut()
            relay.refusing = True
            with pytest.raises(StoreUnavailable) as raised:
                away.append([row("", "a", 2)])
            assert raised.value.status == 503 and "PostgreSQL at 127.0.0.1" in raised.value.message
            with pytest.raises(StoreUnavailable):
                away.after("", 0, 9)
            relay.refusing = False
            away.append([row("", "a", 3)])
            assert numbers(away.after("", 0, 9)) == [1, 3]
        finally:
            away.close()


def entry(path: str = "/x", **fields: Any) -> Entry:
    made: dict[str, Any] = {"query": {}, "operation_id": None, "canonical_id": None, "status": 200}
    return Entry(method="GET", path=path, duration_ms=1.0, time=time.time(), **{**made, **fields})


@contextmanager
def unreachable(database: Database, request: pytest.FixtureRequest) -> Iterator[SharedLog]:
    """A log of the database's engine that cannot reach it: a file in a folder that does not exist, or a
    PostgreSQL relay that drops every connection as it arrives."""
    if database.engine == "sqlite":
        away: SharedLog = SqliteLog(Path("/nonexistent/folder/state.db"))
        yield away
        away.close()
        return
    cluster = request.getfixturevalue("postgres_cluster")
    with Proxy(cluster.port) as relay:
        relay.refusing = True
        away = PostgresLog(relay.url(database.where.rsplit("/", 1)[1]))
        try:
            yield away
        finally:
            away.close()
        assert relay.accepted > 0


def test_a_recorder_keeps_what_it_cannot_write_and_writes_it_when_the_database_is_back(
    tables: Database, request: pytest.FixtureRequest
) -> None:
    recorder = Recorder(tables.log(), "a", Budget())
    journal = SharedJournal(recorder, "s")
    working = recorder.log
    with unreachable(tables, request) as away:
        recorder.log = away
        for n in range(3):
            journal.record(entry(f"/{n}"))  # never raises: the request path only appends in memory
        assert recorder.flush() == 0
        assert len(journal.kept) == 3 and journal.dropped == 0  # they wait for the next try
        with pytest.raises(StoreUnavailable):
            journal.entries()  # a read cannot record its demand: it fails, as the store's reads do
        recorder.log = working
    journal.record(entry("/later"))
    assert [e.path for e in journal.entries()] == ["/0", "/1", "/2", "/later"]
    assert len(journal.kept) == 0  # written, so let go
    journal.clear()
    assert journal.dropped == 0 and len(journal) == 0
    recorder.close()


def test_any_text_a_request_sends_is_written_and_read_back(tables: Database) -> None:
    recorder = Recorder(tables.log(), "a", Budget())
    journal = SharedJournal(recorder, None)
    odd = "/p\x00\u2603\U0001f600"
    journal.record(entry(odd, query={"q": ["\x00"]}, request_body=b"\x00\xff", request_size=2, extra={"k": "\x00"}))
    [back] = journal.entries()
    assert (back.path, back.query, back.request_body, back.extra) == (odd, {"q": ["\x00"]}, b"\x00\xff", {"k": "\x00"})
    recorder.close()


def test_a_pollers_cursor_never_moves_back(tables: Database) -> None:
    recorder = Recorder(tables.log(), "a", Budget())
    journal = SharedJournal(recorder, None)
    journal.record(entry("/1"))
    journal.record(entry("/2"))
    before = journal.listing(after=0)
    assert [e.path for e in before.entries] == ["/1", "/2"] and before.last == before.entries[-1].seq
    journal.clear()  # the newest rows of the whole journal go: what is left says nothing of them
    after = journal.listing(after=before.last)
    assert after.entries == [] and after.last == before.last and after.oldest > before.last
    assert journal.window() == (after.oldest, before.last)
    recorder.close()


def test_letting_go_of_a_session_another_instance_deleted_keeps_the_rows(tables: Database) -> None:
    """The instance that deletes a session deletes its rows (``close``); the others only let go: by the
    time they learn of it, the name may belong to a session made again, whose rows these are."""
    a, b = Recorder(tables.log(), "a", Budget()), Recorder(tables.log(), "b", Budget())
    made_again = SharedJournal(a, "s")
    made_again.record(entry("/new"))
    a.flush()
    old = SharedJournal(b, "s")
    old.record(entry("/old, not written yet"))
    old.let_go()
    b.flush()
    assert [e.path for e in made_again.entries()] == ["/new"]
    made_again.close()
    assert len(made_again) == 0
    a.close()
    b.close()


# -- entries as rows -----------------------------------------------------------------------------------


def test_an_entry_goes_through_a_row_whole_with_its_credentials_masked() -> None:
    sent = entry(
        "/p",
        query={"q": ["1"]},
        request_headers=[("HTTP_AUTHORIZATION", "Bearer sk-123"), ("HTTP_X_REQUEST_ID", "r-1")],
        request_body='{"name": "é"}'.encode(),
        request_size=len('{"name": "é"}'.encode()),
        answer_headers=[("Set-Cookie", "s=1"), ("Content-Type", "application/octet-stream")],
        answer_body=b"\xff\x00\xfe",
        answer_size=3,
        refused_by="rule",
        error="no",
        param="name",
        extra={"forwarded": True},
    )
    stored = entry_row(sent, "s", "host:1")
    assert "sk-123" not in stored.data and "s=1" not in stored.data
    assert stored.size == len(stored.data.encode()) and stored.session == "s" and stored.instance == "host:1"
    for instant in (sent.time, 1796314938.0, 1796314938.9999996, 1796314938.1234565):
        at = format_timestamp(datetime.fromtimestamp(instant, UTC))
        assert entry_row(Entry("GET", "/", {}, None, None, 200, 1.0, time=instant), "", "i").at == at
    back = row_entry(LogRow(stored.session, stored.instance, stored.at, stored.data, stored.size, 42))
    assert back.seq == 42 and back.instance == "host:1"
    assert back.answer_body == b"\xff\x00\xfe" and back.request_body == sent.request_body
    assert back.body == {"name": "é"}
    details = back.details()
    assert dict(details["request"]["headers"])["Authorization"] == "Bearer ****"
    assert dict(details["answer"]["headers"])["Set-Cookie"] == "****"
    assert {k: v for k, v in details.items() if k not in ("instance", "seq")} == {
        k: v for k, v in sent.details().items() if k not in ("instance", "seq")
    }
    assert back.as_dict()["instance"] == "host:1" and back.as_dict()["forwarded"] is True


# -- two apps over one database ------------------------------------------------------------------------


def journal_of(api: Api, count: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``GET /__mock/journal`` once it lists ``count`` entries: the other instances write theirs in
    batches, a tenth of a second apart (this one's are written before it reads)."""
    deadline = time.monotonic() + 5
    while True:
        listed: dict[str, Any] = api.client.get("/__mock/journal", headers=headers).json
        if len(listed["entries"]) >= count or time.monotonic() > deadline:
            return listed
        time.sleep(0.02)


@pytest.fixture
def apps(database: Database) -> Iterator[Callable[..., Api]]:
    """Apps over the database, one per instance name; their journals' writers and their stores' connections
    closed after the test."""
    made: list[Flask] = []

    def make(instance: str, **fields: Any) -> Api:
        app = create_app(database.settings(instance=instance, **fields))
        made.append(app)
        return Api(app)

    yield make
    for app in made:
        mock = app.extensions["mockserver"]
        mock.journal.recorder.close()
        if mock.store.persistence is not None:
            mock.store.persistence.close()


def test_two_instances_show_one_journal_in_time_order_naming_each_instance(apps: Callable[..., Api]) -> None:
    a, b = apps("a"), apps("b")
    for n in range(6):
        assert (a if n % 2 == 0 else b).get(
            f"{CANONICAL}/{n % 3 + 1}?n={n}", headers={"X-Request-Id": "r"}
        ).status_code == 200
    for reader in (a, b):
        listed = journal_of(reader, 6)
        entries = listed["entries"]
        assert [e["instance"] for e in entries] == ["a", "b", "a", "b", "a", "b"]
        assert [e["query"]["n"] for e in entries] == [[str(n)] for n in range(6)]
        assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
        assert {"seq", "time", "method", "path", "query", "operation_id", "canonical_id", "status"} <= set(entries[0])
        assert entries[0]["operation_id"] == "getAccessProfile" and entries[0]["status"] == 200
        assert listed["last"] >= max(e["seq"] for e in entries) and listed["oldest"] == min(e["seq"] for e in entries)
    # One entry in full, through the other instance: the request's headers, masked.
    first = a.client.get("/__mock/journal").json["entries"][0]
    details = b.client.get(f"/__mock/journal/{first['seq']}").json
    assert details["instance"] == "a" and dict(details["request"]["headers"])["Authorization"] == "Bearer ****"
    assert json.loads(details["answer"]["body"]["text"])["access_profile"]["id"] == 1
    assert b.client.get("/__mock/journal/999999").status_code == 404


def test_polling_two_instances_under_load_misses_nothing(apps: Callable[..., Api]) -> None:
    a, b = apps("a"), apps("b")
    senders, each = 4, 25
    failures: list[BaseException] = []

    def send(api: Api, n: int) -> None:
        try:
            for i in range(each):
                assert api.get(f"{CANONICAL}/1?sender={n}&i={i}").status_code == 200
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(a if n % 2 else b, n)) for n in range(senders)]
    for thread in threads:
        thread.start()
    seen: dict[int, dict[str, Any]] = {}
    cursor = 0
    while True:
        alive = any(t.is_alive() for t in threads)
        listed = a.client.get(f"/__mock/journal?after={cursor}").json
        for found in listed["entries"]:
            assert found["seq"] > cursor and found["seq"] not in seen
            seen[found["seq"]] = found
        cursor = listed["last"]
        if not alive:
            break
        time.sleep(0.02)
    # The senders are done, but their last batches may still be on their way: poll until all arrived.
    deadline = time.monotonic() + 5
    while len(seen) < senders * each and time.monotonic() < deadline:
        listed = b.client.get(f"/__mock/journal?after={cursor}").json
        seen.update((found["seq"], found) for found in listed["entries"])
        cursor = listed["last"]
        time.sleep(0.05)
    assert not failures, failures
    sent = {(f"{n}", f"{i}") for n in range(senders) for i in range(each)}
    assert {(e["query"]["sender"][0], e["query"]["i"][0]) for e in seen.values()} == sent
    assert {e["instance"] for e in seen.values()} == {"a", "b"}


def test_clearing_through_one_instance_clears_the_sessions_entries_of_every_instance(
    apps: Callable[..., Api],
) -> None:
    a, b = apps("a"), apps("b")
    in_s = {"X-Mockserver-Session": "s"}
    assert a.get(f"{CANONICAL}/1").status_code == 200 and b.get(f"{CANONICAL}/2").status_code == 200
    assert a.get(f"{CANONICAL}/3", headers=in_s).status_code == 200
    before = journal_of(a, 2)
    held = max(e["seq"] for e in before["entries"])
    assert b.client.delete("/__mock/journal").json == {"entries": []}
    listed = a.client.get("/__mock/journal").json
    assert listed["entries"] == [] and listed["oldest"] > held  # the inspector drops the rows it holds
    assert listed["last"] >= before["last"]  # a poller's cursor never moves back
    # A session's entries carry its name: they are its own, on every instance.
    [in_session] = journal_of(b, 1, in_s)["entries"]
    assert in_session["path"] == f"{CANONICAL}/3" and in_session["instance"] == "a"
    assert a.get(f"{CANONICAL}/4").status_code == 200
    assert [e["path"] for e in journal_of(b, 1)["entries"]] == [f"{CANONICAL}/4"]


def test_a_deleted_sessions_rows_go_with_it(apps: Callable[..., Api]) -> None:
    a, b = apps("a"), apps("b")
    in_s = {"X-Mockserver-Session": "s"}
    assert a.get(f"{CANONICAL}/1", headers=in_s).status_code == 200
    a.client.get("/__mock/violations", headers=in_s)  # the session, on this instance
    registry = a.app.extensions["mockserver.sessions"]
    registry.get("s").mock.record(Violation(None, "GET", "/x", None, ("in s",)))
    assert len(journal_of(b, 1, in_s)["entries"]) == 1
    assert len(b.client.get("/__mock/violations", headers=in_s).json["violations"]) == 1
    assert a.client.delete("/__mock/sessions/s").status_code == 200
    shared = a.mock.journal.recorder.log
    assert (shared.count("s"), shared.count_violations("s")) == (0, 0)


def test_the_shared_rows_keep_to_the_byte_budget(apps: Callable[..., Api]) -> None:
    a, b = apps("a", journal_mb=1), apps("b", journal_mb=1)
    for n in range(30):
        assert a.post(CANONICAL, {"name": f"budget {n}", "description": "d" * 1000}).status_code == 201
    for _ in range(15):  # pages of about 50 kB each, twice over: far past one MiB
        assert a.get(f"{CANONICAL}?limit=100").status_code == 200 and b.get(f"{CANONICAL}?limit=100").status_code == 200
    for api in (a, b):
        api.mock.journal.recorder.flush()
        api.mock.journal.recorder._checked_at = 0  # the next batch checks the budget
    assert a.get(f"{CANONICAL}/1").status_code == 200 and b.get(f"{CANONICAL}/1").status_code == 200
    a.mock.journal.recorder.flush()
    b.mock.journal.recorder.flush()
    listed = a.client.get("/__mock/journal").json
    assert listed["bounds"]["bytes"] == 1024 * 1024
    assert a.mock.journal.recorder.log.used_bytes() <= 1024 * 1024
    assert a.mock.journal.dropped + b.mock.journal.dropped > 0
    assert listed["entries"][-1]["path"] == f"{CANONICAL}/1"  # the newest stay


def test_violations_are_shared_by_the_instances(apps: Callable[..., Api]) -> None:
    a, b = apps("a"), apps("b")
    assert isinstance(a.mock.violations, SharedViolations)
    a.mock.record(Violation("getAccessProfile", "GET", f"{CANONICAL}/1", 200, ("access_profile.version: required",)))
    b.mock.record(Violation(None, "GET", "/x", None, ("the validators disagree",)))
    for reader in (a, b):
        listed = reader.client.get("/__mock/violations").json
        assert [(v["instance"], v["problems"]) for v in listed["violations"]] == [
            ("a", ["access_profile.version: required"]),
            ("b", ["the validators disagree"]),
        ]
        assert reader.client.get("/__mock/health").json["violations"] == 2
    in_s = {"X-Mockserver-Session": "s"}
    assert a.client.get("/__mock/violations", headers=in_s).json["violations"] == []  # sessions apart
    assert b.client.delete("/__mock/violations").status_code == 200
    assert a.client.get("/__mock/violations").json == {"violations": [], "dropped": 0}


def test_an_unreachable_journal_database_fails_no_request(
    apps: Callable[..., Api], database: Database, request: pytest.FixtureRequest
) -> None:
    """The journal's rows and violations cannot be written (the store itself still works): the requests
    are answered as ever, a lost violation is counted, and the entries wait for the database."""
    a = apps("a")
    recorder, violations = a.mock.journal.recorder, a.mock.violations
    assert isinstance(violations, SharedViolations)
    working = recorder.log
    with unreachable(database, request) as away:
        recorder.log = violations.log = away
        for n in range(5):
            assert a.get(f"{CANONICAL}/{n + 1}").status_code == 200
        a.mock.record(Violation(None, "GET", "/x", None, ("lost",)))  # does not raise either
        answer = a.client.get("/__mock/journal")
        assert answer.status_code == 503 and answer.json["error"]["type"] == "state_store_unavailable"
        assert a.mock.journal.dropped == 0 and len(a.mock.journal.kept) == 5  # kept in memory meanwhile
        assert violations.dropped == 1
        recorder.log = violations.log = working
    assert a.get(f"{CANONICAL}/1").status_code == 200
    listed = a.client.get("/__mock/journal").json
    assert [e["path"] for e in listed["entries"]] == [f"{CANONICAL}/{n}" for n in (1, 2, 3, 4, 5, 1)]
    assert listed["dropped"] == 0
    assert a.client.get("/__mock/violations").json == {"violations": [], "dropped": 1}


# -- the inspector -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_inspector_shows_every_instances_requests_in_time_order(apps: Callable[..., Api]) -> None:
    import requests
    from playwright.sync_api import expect
    from test_inspector import browser_page

    from mockserver.server.serving import BackgroundServer

    a, b = apps("alpha"), apps("beta")
    servers = [BackgroundServer(api.app).start() for api in (a, b)]
    try:
        first, second = (server.url for server in servers)
        with browser_page(first) as (page, requested, errors):
            page.goto(f"{first}/__mock/")
            expect(page.locator("#live")).to_have_text("live", timeout=10_000)
            expect(page.locator("th.instance")).to_be_hidden()  # no entry names an instance yet
            for n, origin in enumerate([first, second, second, first]):
                assert requests.get(f"{origin}{CANONICAL}/{n + 1}", headers=AUTH, timeout=5).status_code == 200
            rows = page.locator("#rows tr.row")
            expect(rows).to_have_count(4, timeout=5_000)
            expect(page.locator("th.instance")).to_be_visible()
            # Newest on top, whichever instance answered and whenever its batch arrived.
            expect(rows.locator(".instance")).to_have_text(["alpha", "beta", "beta", "alpha"])
            expect(rows.locator(".where")).to_have_text([f"{CANONICAL}/{n}" for n in (4, 3, 2, 1)])
            rows.nth(1).click()
            expect(page.locator("#details .meta")).to_contain_text("beta")
        assert errors == []
        assert all(url.startswith(first + "/") for url in requested)
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_the_workers_of_one_server_keep_one_journal() -> None:
    """``mockserver serve --workers 2``: whichever worker answers the journal's reader, it lists every
    worker's requests, each named after its worker."""
    import requests
    from serving import serve

    sent = 60
    with serve("--no-watch", "--workers", "2", "--instance", "w") as served:

        def send(n: int) -> None:
            for i in range(n, sent, 6):  # a connection each: the workers share the port's connections
                assert requests.get(f"{served.url}{CANONICAL}/1?i={i}", headers=AUTH, timeout=10).status_code == 200

        threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 10
        while True:
            entries = requests.get(f"{served.url}/__mock/journal", timeout=10).json()["entries"]
            if len(entries) >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert sorted(int(e["query"]["i"][0]) for e in entries) == list(range(sent))
    assert {e["instance"] for e in entries} == {"w-1", "w-2"}
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)


@pytest.mark.parametrize("read", [True, False])
def test_a_process_that_ends_writes_the_entries_it_holds_when_a_reader_asks(tmp_path: Path, read: bool) -> None:
    """An instance stopped within the tenth of a second its writer waits between batches loses nothing a
    reader asked for; nobody reading, it writes nothing."""
    import subprocess
    import sys

    path = tmp_path / "state.db"
    state = StateFile(path)
    state.prepare(fresh=False)
    state.close()
    log = SqliteLog(path)
    if read:
        log.demand()
    script = (
        "import sys; from pathlib import Path; from mockserver import Settings, create_app\n"
        "app = create_app(Settings(state=Path(sys.argv[1]), workers=2, instance='quick'))\n"
        f"answer = app.test_client().get('{CANONICAL}/1', headers={{'Authorization': 'Bearer t'}})\n"
        "assert answer.status_code == 200\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    try:
        written = log.after("", 0, 10)
    finally:
        log.close()
    if not read:
        assert written == []
        return
    [one] = written
    assert one.instance == "quick" and json.loads(one.data)["path"] == f"{CANONICAL}/1"


def test_no_journal_row_is_written_while_nobody_reads(apps: Callable[..., Api], database: Database) -> None:
    a, b = apps("a"), apps("b")
    for n in range(20):
        assert (a if n % 2 else b).get(f"{CANONICAL}/1?n={n}").status_code == 200
    time.sleep(3 * shared_journal.FLUSH_S)  # the writers looked for a reader meanwhile, more than once
    shared = database.log()
    assert shared.count("") == 0 and shared.used_bytes() == 0 and shared.demand_age() is None
    assert len(a.mock.journal.kept) == 10 and len(b.mock.journal.kept) == 10  # held in memory, as one process does


def test_the_first_read_after_a_quiet_time_lists_another_instances_earlier_requests(
    apps: Callable[..., Api], database: Database
) -> None:
    a, b = apps("a"), apps("b")
    in_s = {"X-Mockserver-Session": "s"}
    for n in range(3):
        assert a.get(f"{CANONICAL}/1?n={n}").status_code == 200
    assert a.get(f"{CANONICAL}/2", headers=in_s).status_code == 200
    assert b.get(f"{CANONICAL}/1?n=3").status_code == 200
    started = time.monotonic()
    entries = b.client.get("/__mock/journal").json["entries"]  # once, no polling
    assert time.monotonic() - started >= shared_journal.DEMAND_WAIT_S  # it waited for the others
    assert [(e["instance"], e["query"]["n"]) for e in entries] == [
        ("a", ["0"]),
        ("a", ["1"]),
        ("a", ["2"]),
        ("b", ["3"]),
    ]
    # The demand lasts: a's entries of every session are written as they come, and a's memory lets them go.
    [in_session] = journal_of(b, 1, in_s)["entries"]
    assert in_session["instance"] == "a"
    assert a.get(f"{CANONICAL}/3").status_code == 200
    assert [e["path"] for e in journal_of(b, 5)["entries"]][-1] == f"{CANONICAL}/3"
    assert len(a.mock.journal.kept) == 0


def test_a_clear_also_clears_what_other_instances_have_not_written_yet(
    apps: Callable[..., Api], database: Database
) -> None:
    a, b = apps("a"), apps("b")
    assert a.get(f"{CANONICAL}/1").status_code == 200  # held by a, nobody reading
    assert b.client.delete("/__mock/journal").status_code == 200
    assert a.get(f"{CANONICAL}/2").status_code == 200  # after the clear: stays
    assert [e["path"] for e in b.client.get("/__mock/journal").json["entries"]] == [f"{CANONICAL}/2"]


def test_an_instance_that_learns_late_of_a_deletion_keeps_the_rows_of_the_session_made_again(
    apps: Callable[..., Api],
) -> None:
    a, b = apps("a"), apps("b")
    in_s = {"X-Mockserver-Session": "s"}
    assert b.get(f"{CANONICAL}/1", headers=in_s).status_code == 200  # b holds the session
    # Written before the deletion, as b's writer may do at any moment (else the race of a batch of the
    # old session's entries written after the deletion is what the test would see: let_go's own test).
    b.mock.journal.recorder.flush()
    assert a.client.delete("/__mock/sessions/s").status_code == 200
    assert a.get(f"{CANONICAL}/2", headers=in_s).status_code == 200  # made again, through a
    a.mock.journal.recorder.flush()
    # b hears of the deletion now: it lets go of its copy without deleting the new session's rows.
    assert b.get(f"{CANONICAL}/3", headers=in_s).status_code == 200
    paths = [e["path"] for e in journal_of(a, 2, in_s)["entries"]]
    assert paths == [f"{CANONICAL}/2", f"{CANONICAL}/3"]


def test_every_read_and_cut_of_one_sessions_rows_goes_through_its_index(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN of the journal's and the violations' per-session statements on a state file:
    each searches by (session, seq) or by its key, none scans the table. The budget's statements (``used``,
    ``budget_cut``, ``cut``) read the whole journal by design: the budget itself bounds it."""
    path = tmp_path / "state.db"
    StateFile(path).prepare(fresh=False)
    log = SqliteLog(path)
    per_session = {
        "after": ("", 0, 10),
        "newest": ("", 10),
        "row": ("", 1),
        "count": ("",),
        "clear": ("",),
        "keep_last": ("", "", 10),
        "violations": ("", 10),
        "count_violations": ("",),
        "clear_violations": ("",),
        "keep_violations": ("", "", 10),
    }
    with sqlite3.connect(path) as db:
        for name, parameters in per_session.items():
            plan = [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {log._sql[name]}", parameters)]
            table = "violations" if "violation" in name else "journal"
            assert plan and all(f"SCAN {table}" not in step for step in plan), (name, plan)
            assert any(f"SEARCH {table} USING" in step for step in plan), (name, plan)  # its index or its key
    log.close()
