"""The state in a SQLite file (``--state PATH``): a restart comes back with everything.

- **Durable.** Every change is committed (WAL, ``synchronous=FULL``) before the mock answers, so a
  change that was acknowledged survives even ``kill -9``, and SQLite's transactions keep the file
  whole whatever the moment of the kill.
- **A write costs what it changes.** Only the records a write changed are written (the store says
  which), and history rows are appended. Versions and audit rows stay in the file and are read
  from it when asked for, so neither the start nor memory grows with the history; each read has an
  index matching its filter and order, and audit counts are kept, so it costs what it returns.
- **One owner.** The file is locked (``flock``) for as long as it is open; another process (or app)
  that opens it is refused, and the lock goes with the process, even after ``kill -9``.
- **Reads beside writes.** History is read through each thread's own connection, which sees the
  last commit and never waits for a transaction in progress.
- **Every session in one file.** Each row carries its session's name (``''`` for the default state),
  and a session's persistence is a view of the file bound to that name (one writing connection).
- **A write that cannot be saved changes nothing**: the transaction rolls back, the store undoes
  the change in memory, and the caller is told why.
- **Several processes on one file** (``--workers``, ``shared``): every change of a session's live
  state is also a row of its change log, written in the same transaction; a view's ``writing()`` is
  a ``BEGIN IMMEDIATE`` transaction that first reads the rows the process has not seen, and
  ``missed()`` reads them for a reader. The parent holds the file's lock (``sqlite_file.hold``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from mockserver.domain.timeutil import format_timestamp, parse_timestamp
from mockserver.spec import jsontext
from mockserver.storage.base import (
    RECORD_KINDS,
    Changes,
    LogEntry,
    MemoryHistory,
    Record,
    SavedSession,
    State,
    utc_now,
)
from mockserver.storage.history import DatabaseHistory, Statements
from mockserver.storage.sqlite_file import (
    CATCH_UP_SQL,
    COLUMNS,
    DEFAULT,
    HISTORY_TABLES,
    LAST_SQL,
    SESSION_TABLES,
    StateFile,
    StateFileError,
    append_history,
    hold,
    log_change,
    recount,
    session_column,
)

__all__ = ["DEFAULT", "SavedSession", "SqliteHistory", "SqliteState", "StateFileError", "hold"]
_REPLACE = '{"kind":"replace"}'


def _entries(rows: Sequence[tuple[Any, ...]]) -> list[LogEntry]:
    return [LogEntry(int(n), json.loads(data)) for n, data in rows]


def _write_entry(changes: Changes, saved: Sequence[str]) -> str:
    """A ``"write"`` log row's JSON, reusing each saved record's text (written once for both tables)."""
    parts = [
        f"[{jsontext.text(kind)},{jsontext.text(key)},{text}]"
        for (kind, key, _), text in zip(changes.saved, saved, strict=True)
    ]
    removed = jsontext.text([[kind, key] for kind, key in changes.removed])
    counters = jsontext.text(changes.counters)
    return f'{{"kind":"write","saved":[{",".join(parts)}],"removed":{removed},"counters":{counters}}}'


def _state_data(found: dict[str, list[Record]], counters: dict[str, int]) -> dict[str, Any]:
    by_id = lambda record: record["id"]  # noqa: E731 - records of one kind are listed in id order
    return {
        "profiles": found["profile"],
        "versions": [],
        "audit": [],
        "role_attachments": sorted(found["role_attachment"], key=by_id),
        "user_copies": sorted(found["user_copy"], key=by_id),
        "roles": found["role"],
        "users": found["user"],
        "virtual_keys": sorted(found["virtual_key"], key=lambda k: int(k["id"].split("-")[-1])),
        "counters": counters,
    }


def _without_history(state: State) -> dict[str, Any]:
    data = state.copy(history=MemoryHistory()).to_dict()
    del data["versions"], data["audit"]
    return data


class SqliteState:
    """A state file, seen as one session's state: ``SqliteState(path)`` opens the file and is the
    default session; ``view(name)`` is another session of the same file (``StateFile``: one writing
    connection and its lock, a reading connection per thread).

    Save through each view from one thread at a time (its store's lock guarantees it); the file's own
    lock keeps the views' transactions apart. Reads need no lock.
    """

    def __init__(self, path: Path, fresh: bool = False, shared: bool = False) -> None:
        """``shared``: several processes use the file at once, their parent holding it (``hold``)."""
        self.path = path
        self.session = DEFAULT
        self.shared = shared
        self.reads_wait = False  # missed() is a query of this file, which never waits for a writer (WAL)
        self._file = StateFile(path, held=shared)
        self._owner = True
        self._dropped = False
        self.seen = 0  # the last change log row this process's state of the session holds
        self._joined: sqlite3.Connection | None = None  # the transaction of ``writing()``, while it runs
        self._logged = 0  # the row that transaction appended
        # By reading connection (one per thread): its data_version and the seen when missed() last found nothing.
        self._quiet: dict[int, tuple[int, int]] = {}
        # What a new session's row says (the registry of sessions sets them before the first save).
        self.created_at = ""
        self.chaos: dict[str, Any] = {}
        self.now: Callable[[], str] | None = None  # with a clock, each save records when the session was used
        try:
            self._file.prepare(fresh)
        except BaseException:
            self._file.close()
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        return self._file.db

    def view(self, session: str) -> SqliteState:
        """The state of another session, in the same file."""
        other = object.__new__(SqliteState)
        other.__dict__.update(self.__dict__)
        other.session = session
        other._owner = False
        other._dropped = False
        other.seen = 0
        other._joined = None
        other._logged = 0
        other._quiet = {}
        other.created_at = ""
        other.chaos = {}
        other.now = None
        return other

    def sessions(self) -> list[SavedSession]:
        """Every named session the file keeps, oldest first."""
        rows = self._file.rows(
            "SELECT name, created_at, last_used, chaos FROM sessions WHERE name != '' ORDER BY created_at, name"
        )
        return [SavedSession(name, created, used, json.loads(chaos)) for name, created, used, chaos in rows]

    # -- the live state ----------------------------------------------------------------------------

    def load(self) -> State | None:
        """The saved state, or None when the file holds none yet. Its history stays in the file.

        Read in one transaction, with the last change log row it holds (``seen``), the session's chaos
        and when it was created.
        """
        with self._file.reading() as db:
            row = db.execute(
                "SELECT counters, chaos, created_at FROM sessions WHERE name = ?", (self.session,)
            ).fetchone()
            self.seen = int(db.execute(LAST_SQL, (self.session,)).fetchone()[0])
            if row is None:
                return None
            found: dict[str, list[Record]] = {kind: [] for kind in RECORD_KINDS}
            for kind, data in db.execute(
                "SELECT kind, data FROM records WHERE session = ? ORDER BY kind, rowid", (self.session,)
            ):
                found[kind].append(json.loads(data))
        self.chaos, self.created_at = json.loads(row[1]), row[2]
        return State.from_dict(_state_data(found, json.loads(row[0])), history=SqliteHistory(self))

    # -- several processes on one file -------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[list[LogEntry]]:
        """A transaction holding the file's write lock (``BEGIN IMMEDIATE``), with the change log rows
        after ``seen``; what this view writes meanwhile joins it, and it commits when the block ends."""
        with self._transaction() as db:
            self._joined, self._logged = db, 0
            try:
                yield _entries(db.execute(CATCH_UP_SQL, (self.session, self.seen)).fetchall())
            finally:
                self._joined = None
        if self._logged:  # committed: this process's state holds its own row
            self.seen = max(self.seen, self._logged)

    def missed(self) -> list[LogEntry]:
        """The change log rows after ``seen`` (one search of the primary key), without waiting for a write."""
        reader, version = self._file.data_version()  # before the query: a commit between the two is looked for again
        seen = self.seen
        found = _entries(self._file.rows(CATCH_UP_SQL, (self.session, seen)))
        if not found:
            self._quiet[reader] = (version, seen)
        return found

    def unchanged(self) -> bool:
        """Whether ``missed()`` would find nothing, known without reading the log: this thread's reading
        connection found nothing after ``seen`` (or an older one) last time, and nobody has committed to
        the file since (its ``data_version`` is the same). Cheaper than the query, and never waits."""
        reader, version = self._file.data_version()
        quiet = self._quiet.get(reader)
        return quiet is not None and quiet[0] == version and self.seen >= quiet[1]

    def _log(self, db: sqlite3.Connection, data: str) -> None:
        n = log_change(db, self.session, data)
        if self._joined is not None:
            self._logged = n

    def save(self, changes: Changes) -> None:
        """Write one change in one durable transaction, or raise ``StateNotSaved`` and write nothing."""
        saved = [jsontext.text(record) for _, _, record in changes.saved]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO records (session, kind, key, data) VALUES (?, ?, ?, ?)",
                [(self.session, kind, key, text) for (kind, key, _), text in zip(changes.saved, saved, strict=True)],
            )
            db.executemany(
                "DELETE FROM records WHERE session = ? AND kind = ? AND key = ?",
                [(self.session, kind, key) for kind, key in changes.removed],
            )
            append_history(db, changes.versions, changes.audit, self.session)
            if self.now is not None:
                db.execute(
                    "UPDATE sessions SET counters = COALESCE(?, counters), last_used = ? WHERE name = ?",
                    (None if changes.counters is None else json.dumps(changes.counters), self.now(), self.session),
                )
            elif changes.counters is not None:
                db.execute(
                    "UPDATE sessions SET counters = ? WHERE name = ?", (json.dumps(changes.counters), self.session)
                )
            if changes.saved or changes.removed or changes.counters is not None:
                self._log(db, _write_entry(changes, saved))

    def replace(self, state: State) -> State:
        """Make the file hold exactly ``state`` for this session (a start from the fixtures, a reset,
        a restore). Returns the state to use from now on: the same records, history read from the file.
        """
        versions, audit = state.history.rows()
        with self._transaction() as db:
            self._clear(db)
            db.executemany(
                "INSERT INTO records (session, kind, key, data) VALUES (?, ?, ?, ?)", self._rows(state.records())
            )
            append_history(db, versions, audit, self.session)
            self._set_counters(db, state.counters)
            self._log(db, _REPLACE)
        return state.copy(history=SqliteHistory(self))

    def set_chaos(self, chaos: dict[str, Any]) -> None:
        """Keep the session's chosen chaos (a ``"chaos"`` row tells the other processes)."""
        with self._transaction() as db:
            db.execute("UPDATE sessions SET chaos = ? WHERE name = ?", (json.dumps(chaos), self.session))
            self._log(db, jsontext.text({"kind": "chaos", "chaos": chaos}))
        self.chaos = chaos

    def drop(self, idle_before: datetime | None = None) -> bool:
        """Delete everything of this session from the file; later saves of this view are refused.

        A ``"dropped"`` row tells the other processes (the log's older rows go; that one stays, so the
        log of a session made again goes on from it). ``idle_before``: only when the session was last
        used (by any process) before then, and the row says it expired; whether it was dropped.
        """
        with self._transaction() as db:
            if idle_before is not None:
                row = db.execute("SELECT last_used FROM sessions WHERE name = ?", (self.session,)).fetchone()
                if row is not None and _instant(row[0]) >= idle_before:
                    return False
            for table in SESSION_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {session_column(table)} = ?", (self.session,))  # noqa: S608
            n = log_change(db, self.session, jsontext.text({"kind": "dropped", "expired": idle_before is not None}))
            db.execute("DELETE FROM changes WHERE session = ? AND n < ?", (self.session, n))
        self._dropped = True
        return True

    def last_used(self) -> datetime | None:
        """When the session was last used by any process, as the file says; None when it holds no such session."""
        row = self._file.rows("SELECT last_used FROM sessions WHERE name = ?", (self.session,))
        return _instant(row[0][0]) if row else None

    def touch(self) -> None:
        """Record that the session was used now (``now``) without changing it: a read, in shared mode."""
        if self.now is None:
            return
        with self._transaction() as db:
            db.execute("UPDATE sessions SET last_used = ? WHERE name = ?", (self.now(), self.session))

    # -- named snapshots: copied inside the file, so even a long history never passes through memory

    def save_snapshot(self, name: str, created_at: str, state: State) -> int:
        """Keep the state (the records of ``state``, the history in the file) under ``name``."""
        with self._transaction() as db:
            self._drop_snapshot(db, name)
            db.execute(
                "INSERT INTO snapshots (session, name, created_at, profiles, data) VALUES (?, ?, ?, ?, ?)",
                (self.session, name, created_at, len(state.profiles), jsontext.text(_without_history(state))),
            )
            for table in ("versions", "audit"):
                db.execute(
                    f"INSERT INTO snapshot_{table} (session, snapshot, {COLUMNS[table]}) "  # noqa: S608
                    f"SELECT session, ?, {COLUMNS[table]} FROM {table} WHERE session = ?",
                    (name, self.session),
                )
        return len(state.profiles)

    def restore_snapshot(self, name: str) -> State | None:
        """Make the snapshot the live state; None when there is no snapshot of that name."""
        row = self._file.rows("SELECT data FROM snapshots WHERE session = ? AND name = ?", (self.session, name))
        if not row:
            return None
        data = json.loads(row[0][0])
        state = State.from_dict({**data, "versions": [], "audit": []}, history=SqliteHistory(self))
        with self._transaction() as db:
            self._clear(db)
            db.executemany(
                "INSERT INTO records (session, kind, key, data) VALUES (?, ?, ?, ?)", self._rows(state.records())
            )
            for table in ("versions", "audit"):
                db.execute(
                    f"INSERT INTO {table} (session, {COLUMNS[table]}) "  # noqa: S608 - fixed names
                    f"SELECT session, {COLUMNS[table]} FROM snapshot_{table} WHERE session = ? AND snapshot = ?",
                    (self.session, name),
                )
            recount(db, self.session)
            self._set_counters(db, state.counters)
            self._log(db, _REPLACE)
        return state

    def delete_snapshot(self, name: str) -> bool:
        with self._transaction() as db:
            return self._drop_snapshot(db, name)

    def snapshots(self) -> dict[str, tuple[str, int]]:
        """Name -> (when it was taken, number of profiles)."""
        rows = self._file.rows(
            "SELECT name, created_at, profiles FROM snapshots WHERE session = ? ORDER BY name", (self.session,)
        )
        return {name: (created_at, profiles) for name, created_at, profiles in rows}

    def close(self) -> None:
        """Close the file (the view that opened it only); its lock goes with it."""
        if self._owner:
            self._file.close()

    # -- reading history (SqliteHistory) -----------------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Record]:
        """Records (JSON in the one column selected) of this session: ``sql``'s first parameter is the session."""
        return [json.loads(data) for (data,) in self._file.rows(sql, (self.session, *parameters))]

    def count(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """The one number ``sql`` selects (0 when it finds no row)."""
        found = self._file.rows(sql, (self.session, *parameters))
        return int(found[0][0]) if found else 0

    # -- helpers -----------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction of its own, or the one ``writing()`` holds open (which commits when it ends)."""
        if self._joined is not None:
            yield self._joined
            return
        refused = f"the session {self.session!r} was deleted" if self._dropped else None
        with self._file.transaction(refused) as db:
            yield db

    def _clear(self, db: sqlite3.Connection) -> None:
        for table in ("records", *HISTORY_TABLES):
            db.execute(f"DELETE FROM {table} WHERE session = ?", (self.session,))  # noqa: S608 - fixed table names

    def _set_counters(self, db: sqlite3.Connection, counters: dict[str, int]) -> None:
        created = self.created_at or format_timestamp(utc_now())
        used = self.now() if self.now is not None else created
        db.execute(
            "INSERT INTO sessions (name, created_at, last_used, counters, chaos) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET counters = excluded.counters, last_used = excluded.last_used",
            (self.session, created, used, json.dumps(counters), json.dumps(self.chaos)),
        )

    def _rows(self, records: Iterator[tuple[str, str, Record]]) -> list[tuple[str, str, str, str]]:
        return [(self.session, kind, key, jsontext.text(record)) for kind, key, record in records]

    def _drop_snapshot(self, db: sqlite3.Connection, name: str) -> bool:
        where = (self.session, name)
        found = db.execute("DELETE FROM snapshots WHERE session = ? AND name = ?", where).rowcount > 0
        db.execute("DELETE FROM snapshot_versions WHERE session = ? AND snapshot = ?", where)
        db.execute("DELETE FROM snapshot_audit WHERE session = ? AND snapshot = ?", where)
        return found


def _instant(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:  # a row of a file of layout 1 (no time kept): long ago
        return datetime.min.replace(tzinfo=utc_now().tzinfo)


class SqliteHistory(DatabaseHistory):
    """Version and audit rows in the state file; rows of the write in progress wait in memory."""

    SQL = Statements("?")


# The history's reads, as the plan tests name them: each with an index that matches its filter and order.
VERSIONS_SQL = SqliteHistory.SQL.versions
VERSION_SQL = SqliteHistory.SQL.version
COUNT_SQL = SqliteHistory.SQL.count
audit_page_sql = SqliteHistory.SQL.audit_page
