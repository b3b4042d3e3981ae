"""PostgreSQL's layout (mockserver/storage/sql/postgresql/schema.sql), applied to the tests' real PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres import Cluster

from mockserver.storage import postgresql as engine
from mockserver.storage.sqlite import SqliteState

pytestmark = pytest.mark.slow


def columns(db: psycopg.Connection[Any]) -> dict[str, list[str]]:
    rows = db.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    SqliteState(path).close()  # a new state file, in the layout the SQLite engine writes today
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")] for table in tables}


def test_an_empty_database_gets_the_layout_and_its_version(postgresql: str) -> None:
    with psycopg.connect(postgresql) as db:
        assert engine.layout_version(db) is None
        assert engine.prepare(db) == engine.LAYOUT_VERSION == 1
        assert engine.layout_version(db) == 1
        assert db.execute("SELECT version FROM layout_versions").fetchall() == [(1,)]


def test_the_tables_are_the_sqlite_files_plus_the_change_log(postgresql: str, tmp_path: Path) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        found = columns(db)
    sqlite = sqlite_columns(tmp_path / "state.sqlite")
    del sqlite["meta"]  # the SQLite file's layout version; PostgreSQL's is layout_versions
    sqlite.pop("sqlite_sequence", None)  # SQLite's own bookkeeping of AUTOINCREMENT
    # Columns PostgreSQL has besides: a record's write count and first-write order (SQLite's rowid), and
    # when a log row was committed.
    extra = {"records": ["row_version", "seq"], "changes": ["at"]}
    for table, wanted in sqlite.items():
        assert [c for c in found[table] if c not in extra.get(table, [])] == wanted, table
    assert found["records"][-2:] == ["row_version", "seq"]
    assert set(found) - set(sqlite) <= {"changes", "journal", "violations", "layout_versions"}
    assert "layout_versions" in found
    assert found["changes"] == ["session", "n", "data", "at"]
    assert found["journal"] == ["seq", "session", "instance", "at", "size", "data"]
    assert found["violations"] == ["seq", "session", "instance", "at", "data"]


def test_the_change_log_journal_and_violations_are_searched_by_session_in_order(postgresql: str) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        indexes = dict(
            db.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('changes', 'journal', 'violations')"
            ).fetchall()
        )
    assert indexes["changes_pkey"].endswith("USING btree (session, n)")
    assert indexes["journal_by_session"].endswith("USING btree (session, seq)")
    assert indexes["violations_by_session"].endswith("USING btree (session, seq)")


def test_preparing_again_changes_nothing_and_keeps_the_rows(postgresql: str) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        db.execute("INSERT INTO sessions (name, created_at, last_used, counters) VALUES ('', 'a', 'b', '{}')")
        db.commit()
        assert engine.prepare(db) == 1
        assert db.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM layout_versions").fetchone() == (1,)


def test_instances_starting_together_on_an_empty_database_create_it_once(postgresql: str) -> None:
    results: list[int | BaseException] = []
    start = threading.Barrier(4)

    def instance() -> None:
        try:
            with psycopg.connect(postgresql) as db:
                start.wait()
                results.append(engine.prepare(db))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [1, 1, 1, 1]
    with psycopg.connect(postgresql) as db:
        assert db.execute("SELECT count(*) FROM layout_versions").fetchone() == (1,)


def test_a_database_of_another_layout_is_refused_naming_both(postgresql: str) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        db.execute("INSERT INTO layout_versions (version) VALUES (7)")
        db.commit()
        with pytest.raises(engine.LayoutError, match=r"holds mockserver's layout 7, and this mock knows layout 1"):
            engine.prepare(db)


def test_records_keep_their_fields_order_and_the_change_log_its_order(postgresql: str) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        text = '{"name": "n", "id": 3, "budgets": [{"max_limit": 1, "currency": "USD"}]}'
        db.execute("INSERT INTO records (session, kind, key, data) VALUES ('', 'profile', '3', %s)", (text,))
        stored = db.execute("SELECT data::text FROM records").fetchone()
        assert stored == (text,)
        for n in range(1, 4):
            db.execute("INSERT INTO changes (session, n, data) VALUES (%s, %s, %s)", ("s", n, f'{{"n": {n}}}'))
        db.commit()
        rows = db.execute("SELECT n, data FROM changes WHERE session = 's' AND n > %s ORDER BY n", (1,))
        assert rows.fetchall() == [(2, {"n": 2}), (3, {"n": 3})]
        with pytest.raises(psycopg.errors.UniqueViolation):  # one row per n in a session
            db.execute("INSERT INTO changes (session, n, data) VALUES ('s', 3, '{}')")


def test_mockserver_serve_on_a_database_of_another_layout_stops_at_start_with_exit_2(
    postgresql: str, postgres_cluster: Cluster
) -> None:
    with psycopg.connect(postgresql) as db:
        engine.prepare(db)
        db.execute("INSERT INTO layout_versions (version) VALUES (7)")
        db.commit()
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--no-watch"],
        env={**os.environ, "MOCKSERVER_STATE": postgres_cluster.url(postgresql.rsplit("dbname=", 1)[1])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "holds mockserver's layout 7" in done.stderr and "Traceback" not in done.stderr
