"""The SQLite file behind ``--state``: its layout, its owner lock, its connections, its transactions.

Every table keys its rows by session (``''`` for the default state), so one file keeps every
session; ``sqlite.SqliteState`` is a session's view of it.

Every history read has an index that matches its filter and its order, and the counts an audit
page answers are kept in ``history_counts``, updated in the transaction that appends the rows: a page
costs what it returns, however long the history (``tests/test_state_file.py`` checks each plan).

Every change of a session's live state also appends a row to its change log (``changes``: ``n`` 1, 2,
3 ... per session, in commit order), in the same transaction, so that processes sharing the file
(``--workers``) apply each other's writes: the rows after the last one a process has seen are one
search of the primary key. The last ``LOG_KEPT`` rows of a session are kept; a process that saw
less reloads the session whole.

One process owns the file (``flock``), or, with ``--workers``, the parent (``hold``) owns it for its
workers, which open it ``held`` and take turns writing with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from mockserver.spec import jsontext
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage.base import Record, StateNotSaved

SCHEMA_VERSION = "5"
BUSY_MS = 5000  # how long a transaction waits for another connection's (a worker's, a reader's)
LOG_KEPT = 1000  # rows of a session's change log kept: a process further behind reloads the session
DEFAULT = ""  # the session of requests that name none: the mock's one state before sessions existed
# Every table keys its rows by session, so one file (and its one lock) keeps every session.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY, created_at TEXT NOT NULL, last_used TEXT NOT NULL, counters TEXT NOT NULL,
    chaos TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS records (
    session TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (session, kind, key));
CREATE TABLE IF NOT EXISTS versions (
    session TEXT NOT NULL DEFAULT '', id INTEGER NOT NULL, profile_id INTEGER NOT NULL, version INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (session, id));
CREATE INDEX IF NOT EXISTS versions_by_profile ON versions (session, profile_id, version);
CREATE TABLE IF NOT EXISTS audit (
    session TEXT NOT NULL DEFAULT '', id INTEGER NOT NULL, profile_id INTEGER, action TEXT NOT NULL, user_id TEXT,
    data TEXT NOT NULL, PRIMARY KEY (session, id));
CREATE INDEX IF NOT EXISTS audit_by_profile ON audit (session, profile_id, id);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit (session, action, id);
CREATE INDEX IF NOT EXISTS audit_by_profile_action ON audit (session, profile_id, action, id);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit (session, user_id, id);
CREATE TABLE IF NOT EXISTS history_counts (
    session TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (session, key));
CREATE TABLE IF NOT EXISTS snapshots (
    session TEXT NOT NULL DEFAULT '', name TEXT NOT NULL, created_at TEXT NOT NULL, profiles INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (session, name));
CREATE TABLE IF NOT EXISTS snapshot_versions (
    session TEXT NOT NULL DEFAULT '', snapshot TEXT NOT NULL, id INTEGER NOT NULL, profile_id INTEGER NOT NULL,
    version INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, snapshot, id));
CREATE TABLE IF NOT EXISTS snapshot_audit (
    session TEXT NOT NULL DEFAULT '', snapshot TEXT NOT NULL, id INTEGER NOT NULL, profile_id INTEGER,
    action TEXT NOT NULL, user_id TEXT, data TEXT NOT NULL, PRIMARY KEY (session, snapshot, id));
CREATE TABLE IF NOT EXISTS changes (
    session TEXT NOT NULL, n INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, instance TEXT NOT NULL, at TEXT NOT NULL,
    size INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_by_session ON journal (session, seq);
CREATE TABLE IF NOT EXISTS violations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, instance TEXT NOT NULL, at TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS violations_by_session ON violations (session, seq);
CREATE TABLE IF NOT EXISTS journal_demand (id INTEGER PRIMARY KEY CHECK (id = 1), read_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS journal_cleared (session TEXT PRIMARY KEY, at REAL NOT NULL);
"""
# The rows of a session's change log after the last one a process has seen, in order: a search of the
# primary key (tests/test_state_file.py checks the plan).
CATCH_UP_SQL = "SELECT n, data FROM changes WHERE session = ? AND n > ? ORDER BY n"
LAST_SQL = "SELECT COALESCE(MAX(n), 0) FROM changes WHERE session = ?"
SESSION_TABLES = (
    "records",
    "versions",
    "audit",
    "history_counts",
    "snapshots",
    "snapshot_versions",
    "snapshot_audit",
    "sessions",
)
HISTORY_TABLES = ("versions", "audit", "history_counts")  # what a session's history is made of
VERSION_COLUMNS = "id, profile_id, version, data"
AUDIT_COLUMNS = "id, profile_id, action, user_id, data"
COLUMNS = {"versions": VERSION_COLUMNS, "audit": AUDIT_COLUMNS}
_NOT_SAVED = "the change was not saved; nothing was changed"


class StateFileError(Exception):
    """A state file the mock cannot use."""


def version_row(session: str, row: Record) -> tuple[Any, ...]:
    return session, row["id"], row["access_profile_id"], row["version"], jsontext.text(row)


def audit_row(session: str, row: Record) -> tuple[Any, ...]:
    return session, row["id"], row["access_profile_id"], row["action"], row["user_id"], jsontext.text(row)


VERSIONS_KEY = "versions"


def audit_key(profile_id: int | None, action: str | None, user_id: str | None) -> str:
    """The ``history_counts`` key of the audit rows matching these filters (None: any value)."""
    return jsontext.text(["audit", profile_id, action, user_id])


def audit_keys(profile_id: int | None, action: str | None, user_id: str | None) -> list[str]:
    """Every count one audit row adds to: one per set of filters it matches (no filter, each, each pair, all).

    A row without a profile or a user is counted under "any" only: no request filters by a missing value
    (an empty ``action`` or ``user_id`` in a request means no filter).
    """
    return [
        audit_key(p, a, u)
        for p in ((None, profile_id) if profile_id is not None else (None,))
        for a in ((None, action) if action else (None,))
        for u in ((None, user_id) if user_id else (None,))
    ]


def _count(db: sqlite3.Connection, session: str, counts: Counter[str]) -> None:
    db.executemany(
        "INSERT INTO history_counts (session, key, n) VALUES (?, ?, ?) "
        "ON CONFLICT (session, key) DO UPDATE SET n = n + excluded.n",
        [(session, key, n) for key, n in counts.items()],
    )


def audit_counts(rows: Iterable[tuple[int | None, str, str | None, int]]) -> Counter[str]:
    """The kept counts that audit rows (profile, action, user, how many) add to (both engines keep them alike)."""
    counts: Counter[str] = Counter()
    for profile_id, action, user_id, n in rows:
        for key in audit_keys(profile_id, action, user_id):
            counts[key] += n
    return counts


def recount(db: sqlite3.Connection, session: str) -> None:
    """Count a session's history again from its rows (after a whole history was copied in)."""
    db.execute("DELETE FROM history_counts WHERE session = ?", (session,))
    found = db.execute(
        "SELECT profile_id, action, user_id, COUNT(*) FROM audit WHERE session = ? "
        "GROUP BY profile_id, action, user_id",
        (session,),
    ).fetchall()
    counts = audit_counts(found)
    counts[VERSIONS_KEY] = db.execute("SELECT COUNT(*) FROM versions WHERE session = ?", (session,)).fetchone()[0]
    _count(db, session, counts)


def append_history(
    db: sqlite3.Connection, versions: Sequence[Record], audit: Sequence[Record], session: str = DEFAULT
) -> None:
    """Append history rows, and count them in the same transaction."""
    counts = audit_counts((r["access_profile_id"], r["action"], r["user_id"], 1) for r in audit)
    if versions:
        counts[VERSIONS_KEY] = len(versions)
    _count(db, session, counts)
    db.executemany(
        f"INSERT INTO versions (session, {VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        [version_row(session, row) for row in versions],
    )
    db.executemany(
        f"INSERT INTO audit (session, {AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        [audit_row(session, row) for row in audit],
    )


def log_change(db: sqlite3.Connection, session: str, data: str) -> int:
    """Append a row (JSON text ``data``) to the session's change log; its ``n``. Keeps the last ``LOG_KEPT``."""
    n = int(
        db.execute(
            "INSERT INTO changes (session, n, data) SELECT ?, COALESCE(MAX(n), 0) + 1, ? FROM changes "
            "WHERE session = ? RETURNING n",
            (session, data, session),
        ).fetchone()[0]
    )
    if n > LOG_KEPT:
        db.execute("DELETE FROM changes WHERE session = ? AND n <= ?", (session, n - LOG_KEPT))
    return n


def _statements(script: str) -> list[str]:
    # executescript() would commit the transaction in progress; statements run one by one stay inside it.
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def hold(path: Path, fresh: bool = False) -> int:
    """Own the state file for processes this one starts (``mockserver serve --workers``): its ``flock``.

    The workers open it with ``StateFile(path, held=True)`` (the lock is this process's, inherited or
    not: it is what refuses another mockserver). The layout is prepared here, once, before any worker
    opens the file; ``fresh``: every named session goes, and the default state is emptied, so that the
    first worker to start seeds it from the fixtures (its snapshots stay). Returns the descriptor
    that holds the lock; closing it (or the end of this process) lets go.
    """
    fd = _owned(path)
    try:
        file = StateFile(path, held=True)
        try:
            file.prepare(fresh)
            if fresh:
                with file.transaction() as db:
                    for table in ("records", *HISTORY_TABLES, "changes"):
                        db.execute(f"DELETE FROM {table} WHERE session = ''")  # noqa: S608 - fixed names
                    db.execute("DELETE FROM sessions WHERE name = ''")
        finally:
            file.close()
    except BaseException:
        os.close(fd)
        raise
    return fd


def _owned(path: Path) -> int:
    """A descriptor of ``path`` holding its ``flock`` (``StateFileError`` naming the holder when in use)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot open the state file ({exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        _refuse_in_use(path)
    return fd


def _refuse_in_use(path: Path) -> NoReturn:
    holder = _lock_holder(path)
    who = f" (pid {holder})" if holder else ""
    raise StateFileError(
        f"{path} is in use by another mockserver{who}; stop it or use --state with another file"
    ) from None


class StateFile:
    """A state file, owned by one process: one connection that writes, shared by the views of its
    sessions one transaction at a time, and a connection per reading thread.

    - **One owner.** The file is locked with ``flock`` for as long as it is open: the operating system
      refuses it to any other open of the file (another process, or another app in this one) and lets
      go when the process ends, even by ``kill -9``. ``held``: the lock is already held for this
      process by the one that started it (``hold``), and several processes share the file; each
      transaction starts with ``BEGIN IMMEDIATE``, which waits (up to ``BUSY_MS``) for another's.
    - **Readers beside the writer.** In WAL mode a reader sees the last committed transaction and
      never waits for the writer, so a read does not queue behind another request's commit and sync.
    """

    def __init__(self, path: Path, held: bool = False) -> None:
        self.path = path
        self.held = held
        self.lock = threading.RLock()  # the writing connection, one transaction at a time
        self._readers = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self.closed = False
        self._owner: int | None = None if held else _owned(path)
        try:
            # Owned: no busy wait, a file another program holds is refused at once. Held: other workers
            # write it too, and each waits its turn.
            self.db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_MS / 1000 if held else 0
            )
        except (OSError, sqlite3.Error) as exc:
            self._let_go()
            raise StateFileError(f"{path}: cannot open the state file ({exc})") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("BEGIN IMMEDIATE")  # a program other than a mockserver holding the file is seen now
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self.db.close()
            self._let_go()
            if "locked" in str(exc) and not held:
                _refuse_in_use(path)
            raise StateFileError(f"{path}: cannot use the state file ({exc})") from None
        except sqlite3.DatabaseError as exc:
            self.db.close()
            self._let_go()
            raise StateFileError(f"{path}: not a mockserver state file ({exc})") from None
        # Owned now: a wait is for this process's own readers' brief locks of the write-ahead log's index.
        self.db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        self.inode = os.stat(path).st_ino

    def _let_go(self) -> None:
        if self._owner is not None:
            os.close(self._owner)  # the lock goes with it

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection (opened on its first read)."""
        db: sqlite3.Connection | None = getattr(self._readers, "db", None)
        if db is None:
            with self.lock:
                if self.closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                # Read-only: a reader never writes, nor makes a new file where the state file was removed.
                uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
                db = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, isolation_level=None, timeout=BUSY_MS / 1000
                )
                self._opened.append(db)
            self._readers.db = db
        return db

    def version(self) -> str | None:
        """The layout the file holds: None when it holds nothing yet."""
        try:
            return _layout(self.db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StateFileError(f"{self.path}: not a mockserver state file ({exc})") from None

    @contextmanager
    def transaction(self, refused: str | None = None) -> Iterator[sqlite3.Connection]:
        """One durable transaction; any failure rolls it back and raises ``StateNotSaved`` (for a file
        another worker kept busy past ``BUSY_MS``, ``StoreUnavailable``); an exception of the block
        itself rolls it back and goes on as it is."""
        with self.lock:
            if refused is not None:
                raise StateNotSaved(f"{refused}; {_NOT_SAVED}")
            try:
                # The connection keeps writing to a file removed or replaced under it; nothing would be kept.
                if os.stat(self.path).st_ino != self.inode:
                    raise StateNotSaved(f"{self.path} was replaced by another file; {_NOT_SAVED}")
            except FileNotFoundError:
                raise StateNotSaved(f"{self.path} was removed; {_NOT_SAVED}") from None
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # a failed COMMIT may have ended the transaction already
                if not isinstance(exc, sqlite3.Error | OSError):
                    raise
                if self.held and isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise StoreUnavailable(
                        f"{self.path}: another worker kept the state file busy for {BUSY_MS // 1000} s; "
                        "nothing was changed, try again"
                    ) from exc
                raise StateNotSaved(f"{self.path}: the change was not saved ({exc}); nothing was changed") from exc

    def data_version(self) -> tuple[int, int]:
        """This thread's reading connection and its ``PRAGMA data_version``: SQLite changes the value when
        any other connection commits to the file (another worker's, or this process's writing one; the
        reader never writes), so an unchanged value says nothing was committed since it was last read.
        The value is the connection's own, hence the connection's id with it (``unchanged``)."""
        db = self._reader()
        return id(db), int(db.execute("PRAGMA data_version").fetchone()[0])

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """What ``sql`` selects from the last committed state; never waits for a write in progress."""
        return self._reader().execute(sql, parameters).fetchall()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's reading connection inside one read transaction: every query sees one commit."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                for reader in self._opened:
                    reader.close()
                self.db.close()
                self._let_go()

    def prepare(self, fresh: bool) -> None:
        """Bring the file to this layout: carry a file of layout 1, 3 or 4 over; ``fresh``: start it again.

        One transaction, which looks at the layout again once it holds the write lock: workers that
        open a file together prepare it once.
        """
        self.version()  # a file that is not a state file is refused here, by name
        with self.transaction() as db:
            version = _layout(db)
            if fresh and version not in (None, "4", SCHEMA_VERSION):  # another layout: start it again, empty
                tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    if table != "sqlite_sequence":
                        db.execute(f'DROP TABLE IF EXISTS "{table}"')
            elif version == "1":
                self._migrate_from_1(db)
            elif version == "3":
                self._migrate_from_3(db)
            elif version not in (None, "4", SCHEMA_VERSION):
                raise StateFileError(f"{self.path}: written by another version of mockserver; start with --fresh")
            # Layout 5 is 4 and the change log, the journal, the violations and the journal's demand and clears:
            # the statements make what is missing (a file of layout 5 made before the last two were added too).
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            self._set_meta(db, "schema", SCHEMA_VERSION)
            if fresh:  # every named session goes; the default state starts again (its snapshots stay)
                for table in (*SESSION_TABLES, "changes"):
                    db.execute(f"DELETE FROM {table} WHERE {session_column(table)} != ''")  # noqa: S608

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _migrate_from_3(self, db: sqlite3.Connection) -> None:
        """Version 3 counted audit rows with COUNT(*) on every page; version 4 keeps the counts."""
        for statement in _statements(_SCHEMA):
            db.execute(statement)
        sessions = "SELECT name FROM sessions UNION SELECT session FROM versions UNION SELECT session FROM audit"
        for (session,) in db.execute(sessions).fetchall():
            recount(db, session)

    def _migrate_from_1(self, db: sqlite3.Connection) -> None:
        """Version 1 kept history rows among the records, whole states as snapshots, and no sessions."""
        db.execute("ALTER TABLE records RENAME TO v1_records")
        db.execute("ALTER TABLE snapshots RENAME TO v1_snapshots")
        row = db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
        for statement in _statements(_SCHEMA):
            db.execute(statement)
        history = {
            kind: [json.loads(data) for (data,) in db.execute("SELECT data FROM v1_records WHERE kind = ?", (kind,))]
            for kind in ("version", "audit")
        }
        db.execute(
            "INSERT INTO records (session, kind, key, data) "
            "SELECT '', kind, key, data FROM v1_records WHERE kind NOT IN ('version', 'audit') ORDER BY rowid"
        )
        append_history(db, history["version"], history["audit"])
        if row is not None:
            db.execute("INSERT INTO sessions (name, created_at, last_used, counters) VALUES ('', '', '', ?)", (row[0],))
        for name, created_at, data in db.execute("SELECT name, created_at, data FROM v1_snapshots").fetchall():
            whole = json.loads(data)
            rest = {key: value for key, value in whole.items() if key not in ("versions", "audit")}
            db.execute(
                "INSERT INTO snapshots (session, name, created_at, profiles, data) VALUES ('', ?, ?, ?, ?)",
                (name, created_at, len(whole["profiles"]), jsontext.text(rest)),
            )
            db.executemany(
                f"INSERT INTO snapshot_versions (session, snapshot, {VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(DEFAULT, name, *version_row(DEFAULT, r)[1:]) for r in whole["versions"]],
            )
            db.executemany(
                f"INSERT INTO snapshot_audit (session, snapshot, {AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(DEFAULT, name, *audit_row(DEFAULT, r)[1:]) for r in whole["audit"]],
            )
        db.execute("DROP TABLE v1_records")
        db.execute("DROP TABLE v1_snapshots")
        db.execute("DELETE FROM meta WHERE key = 'counters'")


def _layout(db: sqlite3.Connection) -> str | None:
    """The layout a file holds (``meta``'s schema): None when it holds no table yet, "unknown" without one."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() if "meta" in tables else None
    return str(row[0]) if row is not None else "unknown"


def session_column(table: str) -> str:
    return "name" if table == "sessions" else "session"


def _lock_holder(path: Path) -> int | None:
    """The other process holding ``path``, where the system says: our ``flock`` in /proc/locks (Linux),
    else SQLite's own lock (a program that holds the file with SQLite)."""
    try:
        found = os.stat(path)
        with open("/proc/locks", encoding="ascii") as locks:
            for line in locks:
                fields = line.split()
                if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
                    continue
                major, minor, inode = fields[5].split(":")
                device = os.makedev(int(major, 16), int(minor, 16))
                pid = int(fields[4])
                if int(inode) == found.st_ino and device == found.st_dev and pid != os.getpid():
                    return pid
    except (OSError, ValueError):
        pass
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
