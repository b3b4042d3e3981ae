"""The state in a SQLite file (``--state PATH``): a restart comes back with everything.

- **Durable.** Every change is committed (WAL, ``synchronous=FULL``) before the mock answers, so a
  change that was acknowledged survives even ``kill -9``, and SQLite's transactions keep the file
  whole whatever the moment of the kill.
- **A write costs what it changes.** Only the records a write changed are written (the store says
  which), and history rows are appended. Versions and audit rows stay in the file and are read
  from it when asked for, so neither the start nor memory grows with the history.
- **One owner.** The connection holds SQLite's exclusive lock for as long as it is open; another
  process (or app) that opens the file is refused, and the lock goes with the process, even after
  ``kill -9``.
- **A write that cannot be saved changes nothing**: the transaction rolls back, the store undoes
  the change in memory, and the caller is told why.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mockserver.domain.store import Changes, MemoryHistory, Record, State, StateNotSaved
from mockserver.spec import jsontext

SCHEMA_VERSION = "2"
_SNAPSHOTS = """CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY, created_at TEXT NOT NULL, profiles INTEGER NOT NULL, data TEXT NOT NULL)"""
_SCHEMA = (
    _SNAPSHOTS
    + """;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS versions_by_profile ON versions (profile_id, version);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, profile_id INTEGER, action TEXT NOT NULL, user_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_profile ON audit (profile_id, id);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit (action, id);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit (user_id, id);
CREATE TABLE IF NOT EXISTS snapshot_versions (
    snapshot TEXT NOT NULL, id INTEGER NOT NULL, profile_id INTEGER NOT NULL, version INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (snapshot, id));
CREATE TABLE IF NOT EXISTS snapshot_audit (
    snapshot TEXT NOT NULL, id INTEGER NOT NULL, profile_id INTEGER, action TEXT NOT NULL, user_id TEXT,
    data TEXT NOT NULL, PRIMARY KEY (snapshot, id));
"""
)
# Records other than history, by kind as stored, and how a state lists them.
_KINDS = ("profile", "role_attachment", "user_copy", "role", "user", "virtual_key")
_VERSION_COLUMNS = "id, profile_id, version, data"
_AUDIT_COLUMNS = "id, profile_id, action, user_id, data"
_COLUMNS = {"versions": _VERSION_COLUMNS, "audit": _AUDIT_COLUMNS}
_NOT_SAVED = "the change was not saved; nothing was changed"


class StateFileError(Exception):
    """A state file the mock cannot use."""


def _dumps(record: Any) -> str:
    return jsontext.text(record)


def _version_row(row: Record) -> tuple[Any, ...]:
    return row["id"], row["access_profile_id"], row["version"], _dumps(row)


def _audit_row(row: Record) -> tuple[Any, ...]:
    return row["id"], row["access_profile_id"], row["action"], row["user_id"], _dumps(row)


def _append_history(db: sqlite3.Connection, versions: Sequence[Record], audit: Sequence[Record]) -> None:
    db.executemany(f"INSERT INTO versions ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?)", map(_version_row, versions))
    db.executemany(f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", map(_audit_row, audit))


def _records(state: State) -> Iterator[tuple[str, str, Record]]:
    """(kind, key, record) of every record of a state, history aside."""
    for kind, items in (
        ("profile", state.profiles.values()),
        ("role_attachment", state.role_attachments),
        ("user_copy", state.user_copies),
        ("role", state.roles.values()),
        ("user", state.users.values()),
        ("virtual_key", state.virtual_keys),
    ):
        for item in items:
            yield kind, str(item["id"]), item


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
    """A state file. Use from one thread at a time (the store's lock guarantees it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # No busy wait: a file in use is refused at once.
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0)
        except (OSError, sqlite3.Error) as exc:
            raise StateFileError(f"{path}: cannot open the state file ({exc})") from None
        try:
            # Exclusive locking mode: once taken, the lock is held until the connection closes.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")  # takes the lock now, not at the first write
            self._db.execute("COMMIT")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                holder = _lock_holder(path)
                who = f" (pid {holder})" if holder else ""
                raise StateFileError(
                    f"{path} is in use by another mockserver{who}; stop it or use --state with another file"
                ) from None
            raise StateFileError(f"{path}: cannot use the state file ({exc})") from None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateFileError(f"{path}: not a mockserver state file ({exc})") from None
        self._inode = os.stat(path).st_ino
        self._closed = False

    # -- the live state ----------------------------------------------------------------------------

    def load(self) -> State | None:
        """The saved state, or None when the file holds none yet. Its history stays in the file."""
        counters = self._meta("counters")
        if counters is None:
            return None
        if self._meta("schema") == "1":
            self._migrate_from_1()
        elif self._meta("schema") != SCHEMA_VERSION:
            raise StateFileError(f"{self.path}: written by another version of mockserver; start with --fresh")
        found: dict[str, list[Record]] = {kind: [] for kind in _KINDS}
        for kind, data in self._db.execute("SELECT kind, data FROM records ORDER BY kind, rowid"):
            found[kind].append(json.loads(data))
        return State.from_dict(_state_data(found, json.loads(counters)), history=SqliteHistory(self))

    def save(self, changes: Changes) -> None:
        """Write one change in one durable transaction, or raise ``StateNotSaved`` and write nothing."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO records (kind, key, data) VALUES (?, ?, ?)",
                [(kind, key, _dumps(record)) for kind, key, record in changes.saved],
            )
            db.executemany("DELETE FROM records WHERE kind = ? AND key = ?", changes.removed)
            _append_history(db, changes.versions, changes.audit)
            if changes.counters is not None:
                self._set_meta(db, "counters", json.dumps(changes.counters))

    def replace(self, state: State) -> State:
        """Make the file hold exactly ``state`` (a start from the fixtures, a reset, a restore).

        Returns the state to use from now on: the same records, with its history read from the file.
        """
        versions, audit = state.history.rows()
        with self._transaction() as db:
            for table in ("records", "versions", "audit"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.executemany("INSERT INTO records (kind, key, data) VALUES (?, ?, ?)", self._rows(_records(state)))
            _append_history(db, versions, audit)
            self._set_meta(db, "schema", SCHEMA_VERSION)
            self._set_meta(db, "counters", json.dumps(state.counters))
        return state.copy(history=SqliteHistory(self))

    # -- named snapshots: copied inside the file, so even a long history never passes through memory

    def save_snapshot(self, name: str, created_at: str, state: State) -> int:
        """Keep the state (the records of ``state``, the history in the file) under ``name``."""
        with self._transaction() as db:
            self._drop_snapshot(db, name)
            db.execute(
                "INSERT INTO snapshots (name, created_at, profiles, data) VALUES (?, ?, ?, ?)",
                (name, created_at, len(state.profiles), _dumps(_without_history(state))),
            )
            for table in ("versions", "audit"):
                db.execute(f"INSERT INTO snapshot_{table} SELECT ?, {_COLUMNS[table]} FROM {table}", (name,))
        return len(state.profiles)

    def restore_snapshot(self, name: str) -> State | None:
        """Make the snapshot the live state; None when there is no snapshot of that name."""
        row = self._db.execute("SELECT data FROM snapshots WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        state = State.from_dict({**data, "versions": [], "audit": []}, history=SqliteHistory(self))
        with self._transaction() as db:
            for table in ("records", "versions", "audit"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.executemany("INSERT INTO records (kind, key, data) VALUES (?, ?, ?)", self._rows(_records(state)))
            for table in ("versions", "audit"):
                db.execute(
                    f"INSERT INTO {table} SELECT {_COLUMNS[table]} FROM snapshot_{table} WHERE snapshot = ?", (name,)
                )
            self._set_meta(db, "counters", json.dumps(state.counters))
        return state

    def delete_snapshot(self, name: str) -> bool:
        with self._transaction() as db:
            return self._drop_snapshot(db, name)

    def snapshots(self) -> dict[str, tuple[str, int]]:
        """Name -> (when it was taken, number of profiles)."""
        rows = self._db.execute("SELECT name, created_at, profiles FROM snapshots ORDER BY name")
        return {name: (created_at, profiles) for name, created_at, profiles in rows}

    def close(self) -> None:
        """Close the file; its lock goes with it."""
        if not self._closed:
            self._closed = True
            self._db.close()

    # -- reading history (SqliteHistory) -----------------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Record]:
        return [json.loads(data) for (data,) in self._db.execute(sql, parameters)]

    def count(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        return int(self._db.execute(sql, parameters).fetchone()[0])

    # -- helpers -----------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _rows(records: Iterator[tuple[str, str, Record]]) -> list[tuple[str, str, str]]:
        return [(kind, key, _dumps(record)) for kind, key, record in records]

    @staticmethod
    def _drop_snapshot(db: sqlite3.Connection, name: str) -> bool:
        found = db.execute("DELETE FROM snapshots WHERE name = ?", (name,)).rowcount > 0
        db.execute("DELETE FROM snapshot_versions WHERE snapshot = ?", (name,))
        db.execute("DELETE FROM snapshot_audit WHERE snapshot = ?", (name,))
        return found

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction; any failure rolls it back and raises ``StateNotSaved``."""
        try:
            # The connection keeps writing to a file removed or replaced under it; nothing would be kept.
            if os.stat(self.path).st_ino != self._inode:
                raise StateNotSaved(f"{self.path} was replaced by another file; {_NOT_SAVED}")
        except FileNotFoundError:
            raise StateNotSaved(f"{self.path} was removed; {_NOT_SAVED}") from None
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StateNotSaved(f"{self.path}: the change was not saved ({exc}); nothing was changed") from exc

    def _migrate_from_1(self) -> None:
        """Version 1 kept history rows among the records, and whole states as snapshots."""
        history = {
            kind: [json.loads(data) for (data,) in self._db.execute("SELECT data FROM records WHERE kind = ?", (kind,))]
            for kind in ("version", "audit")
        }
        old = self._db.execute("SELECT name, created_at, data FROM snapshots").fetchall()
        with self._transaction() as db:
            _append_history(db, history["version"], history["audit"])
            db.execute("DELETE FROM records WHERE kind IN ('version', 'audit')")
            db.execute("DROP TABLE snapshots")
            db.execute(_SNAPSHOTS)
            for name, created_at, data in old:
                whole = json.loads(data)
                rest = {key: value for key, value in whole.items() if key not in ("versions", "audit")}
                db.execute(
                    "INSERT INTO snapshots (name, created_at, profiles, data) VALUES (?, ?, ?, ?)",
                    (name, created_at, len(whole["profiles"]), _dumps(rest)),
                )
                db.executemany(
                    "INSERT INTO snapshot_versions VALUES (?, ?, ?, ?, ?)",
                    [(name, *_version_row(row)) for row in whole["versions"]],
                )
                db.executemany(
                    "INSERT INTO snapshot_audit VALUES (?, ?, ?, ?, ?, ?)",
                    [(name, *_audit_row(row)) for row in whole["audit"]],
                )
            self._set_meta(db, "schema", SCHEMA_VERSION)


class SqliteHistory:
    """Version and audit rows in the state file; rows of the write in progress wait in memory."""

    def __init__(self, file: SqliteState) -> None:
        self.file = file
        self._versions: list[Record] = []
        self._audit: list[Record] = []

    def add_version(self, row: Record) -> None:
        self._versions.append(row)

    def add_audit(self, row: Record) -> None:
        self._audit.append(row)

    def versions(self, profile_id: int) -> list[Record]:
        stored = self.file.query("SELECT data FROM versions WHERE profile_id = ? ORDER BY id", (profile_id,))
        return stored + [row for row in self._versions if row["access_profile_id"] == profile_id]

    def version(self, profile_id: int, number: int) -> Record | None:
        found = self.file.query("SELECT data FROM versions WHERE profile_id = ? AND version = ?", (profile_id, number))
        pending = [r for r in self._versions if r["access_profile_id"] == profile_id and r["version"] == number]
        return next(iter(found + pending), None)

    def audit_page(
        self, profile_id: int | None, action: str | None, user_id: str | None, limit: int, offset: int
    ) -> tuple[list[Record], int]:
        filters = {"profile_id": profile_id, "action": action, "user_id": user_id}
        used = {column: value for column, value in filters.items() if value is not None}
        where = " AND ".join(f"{column} = ?" for column in used) or "1"
        # Rows of the write in progress are the newest.
        pending = [
            row
            for row in reversed(self._audit)
            if all(row["access_profile_id" if c == "profile_id" else c] == v for c, v in used.items())
        ]
        first = pending[offset : offset + limit]
        stored = self.file.query(
            f"SELECT data FROM audit WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608 - fixed columns
            (*used.values(), limit - len(first), max(offset - len(pending), 0)),
        )
        total = self.file.count(f"SELECT COUNT(*) FROM audit WHERE {where}", tuple(used.values()))  # noqa: S608
        return first + stored, total + len(pending)

    def rows(self) -> tuple[list[Record], list[Record]]:
        versions = self.file.query("SELECT data FROM versions ORDER BY id") + self._versions
        return versions, self.file.query("SELECT data FROM audit ORDER BY id") + self._audit

    def sizes(self) -> tuple[int, int]:
        versions = self.file.count("SELECT COUNT(*) FROM versions") + len(self._versions)
        return versions, self.file.count("SELECT COUNT(*) FROM audit") + len(self._audit)

    def pending(self) -> tuple[list[Record], list[Record]]:
        return list(self._versions), list(self._audit)

    def mark(self) -> None:
        self._versions.clear()
        self._audit.clear()

    def rollback(self) -> None:
        self.mark()

    def copy(self) -> MemoryHistory:
        return MemoryHistory.of(*self.rows())


def _lock_holder(path: Path) -> int | None:
    """The process holding SQLite's lock on ``path``, where the system says (Linux and most Unix)."""
    pending_byte = 0x40000000  # where SQLite's unix locks live in the file
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, pending_byte, 512, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, request))
        return pid if kind != fcntl.F_UNLCK and pid > 0 else None
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
