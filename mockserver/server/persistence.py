"""The state in a SQLite file (``--state PATH``): a restart comes back with everything.

Every change is committed (WAL, ``synchronous=FULL``) before the mock answers, so a change that was
acknowledged survives even ``kill -9``, and SQLite's transactions keep the file whole whatever the
moment of the kill. Only the records a change replaced are written: records are values, so a
replaced record is one whose object differs from the last one written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mockserver.domain.store import Record, State

SCHEMA_VERSION = "1"
# kind -> how to list a state's records of that kind
_KINDS = ("profile", "version", "audit", "role_attachment", "user_copy", "role", "user", "virtual_key")


def _records(state: State) -> Iterator[tuple[str, str, Record]]:
    """(kind, key, record) of every record of a state."""
    for profile in state.profiles.values():
        yield "profile", str(profile["id"]), profile
    for rows in state.versions.values():
        for row in rows:
            yield "version", str(row["id"]), row
    for kind, items in (
        ("audit", state.audit),
        ("role_attachment", state.role_attachments),
        ("user_copy", state.user_copies),
        ("role", state.roles.values()),
        ("user", state.users.values()),
        ("virtual_key", state.virtual_keys),
    ):
        for item in items:
            yield kind, str(item["id"]), item


class StateFileError(Exception):
    """A state file the mock cannot use."""


class SqliteState:
    """A state file. Use from one thread at a time (the store's lock guarantees it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise StateFileError(f"{path}: not a mockserver state file ({exc})") from None
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS records (
                kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key));
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS snapshots (
                name TEXT PRIMARY KEY, created_at TEXT NOT NULL, data TEXT NOT NULL);
            """
        )
        self._written: dict[tuple[str, str], Record] = {}
        self._counters: dict[str, int] | None = None

    def load(self) -> State | None:
        """The saved state, or None when the file holds none yet."""
        counters = self._db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
        if counters is None:
            return None
        version = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise StateFileError(f"{self.path}: written by another version of mockserver; start with --fresh")
        found: dict[str, list[Record]] = {kind: [] for kind in _KINDS}
        for kind, data in self._db.execute("SELECT kind, data FROM records ORDER BY kind, rowid"):
            found[kind].append(json.loads(data))
        by_id = lambda record: record["id"]  # noqa: E731 - records of one kind are listed in id order
        state = State.from_dict(
            {
                "profiles": found["profile"],
                "versions": sorted(found["version"], key=by_id),
                "audit": sorted(found["audit"], key=by_id),
                "role_attachments": sorted(found["role_attachment"], key=by_id),
                "user_copies": sorted(found["user_copy"], key=by_id),
                "roles": found["role"],
                "users": found["user"],
                "virtual_keys": sorted(found["virtual_key"], key=lambda k: int(k["id"].split("-")[-1])),
                "counters": json.loads(counters[0]),
            }
        )
        self._written = {(kind, key): record for kind, key, record in _records(state)}
        self._counters = dict(state.counters)
        return state

    def save(self, state: State) -> None:
        """Write what changed since the last save, in one durable transaction."""
        current = {(kind, key): record for kind, key, record in _records(state)}
        changed = [(k, r) for k, r in current.items() if self._written.get(k) is not r]
        removed = [k for k in self._written if k not in current]
        if not changed and not removed and state.counters == self._counters:
            return  # a refused or empty change: nothing to write, no disk flush
        with self._transaction() as db:
            self._write(db, changed, removed, state)
        self._written = current
        self._counters = dict(state.counters)

    def replace(self, state: State) -> None:
        """Make the file hold exactly ``state`` (after a reset or a restore), in one transaction."""
        current = {(kind, key): record for kind, key, record in _records(state)}
        with self._transaction() as db:
            db.execute("DELETE FROM records")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._write(db, list(current.items()), [], state)
        self._written = current
        self._counters = dict(state.counters)

    @staticmethod
    def _write(
        db: sqlite3.Connection,
        changed: list[tuple[tuple[str, str], Record]],
        removed: list[tuple[str, str]],
        state: State,
    ) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO records (kind, key, data) VALUES (?, ?, ?)",
            [(kind, key, json.dumps(record, ensure_ascii=False)) for (kind, key), record in changed],
        )
        db.executemany("DELETE FROM records WHERE kind = ? AND key = ?", removed)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('counters', ?)", (json.dumps(state.counters),))

    def save_snapshot(self, name: str, created_at: str, state: State) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (name, created_at, data) VALUES (?, ?, ?)",
                (name, created_at, json.dumps(state.to_dict(), ensure_ascii=False)),
            )

    def delete_snapshot(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM snapshots WHERE name = ?", (name,))

    def snapshots(self) -> dict[str, tuple[State, str]]:
        rows = self._db.execute("SELECT name, created_at, data FROM snapshots ORDER BY name")
        return {name: (State.from_dict(json.loads(data)), created_at) for name, created_at, data in rows}

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Any:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if error is None else "ROLLBACK")
