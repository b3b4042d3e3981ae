"""The journal and the violations of a shared state, as rows in its database (issue 24).

When several processes serve one state (``--state postgresql://...``, or ``--workers N``), each keeps
recording its requests in memory, and ``server.journal`` writes them here in batches from a thread of
its own; reading the journal reads these rows, so every instance's requests appear, each naming the
instance that answered it. Violations are written here as they happen (they are rare).

Two tables, in both engines' layouts (SQLite and PostgreSQL), every row keyed by its session's name
(``''`` for the default state) and numbered by the database (``seq``):

- ``journal (seq, session, instance, at, size, data)``: ``data`` is the entry as JSON text, ``size``
  its length in bytes (what the byte budget counts);
- ``violations (seq, session, instance, at, data)``.

Two engines behind one interface (``SharedLog``): ``SqliteLog`` over the state file and ``PostgresLog``
over the database, each with connections of its own (one that writes, one that reads), apart from the
store's. A connection that fails is closed and the call raises ``StoreUnavailable``; the next call
connects again, so the log recovers by itself when the database is back.

**Polling never skips a row.** A reader that asks for the rows after ``seq`` N and then moves its
cursor to the newest seq it saw must never pass over a row that becomes visible later with a smaller
seq. PostgreSQL hands out ``bigserial`` values when rows are inserted, not when they commit, so
without care two concurrent inserts (seqs 10 and 11) can commit in the order 11, 10. Appends here take
a transaction-level advisory lock before their first insert (``ORDER_LOCK``), so every seq of one
append is handed out after the previous append committed: seq order is commit order. PostgreSQL makes
a transaction visible before it releases its locks, so a reader that sees seq N sees every committed
row below N. SQLite serialises writers itself (``BEGIN IMMEDIATE``), with the same effect. Appends are
batches written about ten times a second per instance, so the lock is held briefly and seldom. (The
alternatives, a settle delay or a re-read window, trade a missed row for a delay that is only usually
long enough.)

May import ``spec`` (its errors) and ``settings``; never HTTP, the server or the domain's store.
PostgreSQL's driver (psycopg) is imported only when a PostgreSQL log is opened.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mockserver.settings import Settings
from mockserver.spec.errors import StoreUnavailable

# Two 32-bit keys: pg_advisory_xact_lock(int, int) locks in a key space apart from the one-bigint form,
# which the store's per-session locks and the layout lock use, so this lock never collides with them.
ORDER_LOCK = (0x6D6F636B, 0x6A726E6C)  # "mock", "jrnl"
TIMEOUT_S = 5  # a connection, a statement or a lock that takes longer counts as the database being away
# A PostgreSQL call that gets no answer for this long is ended on the client's side: a server that hangs (or a
# network that drops packets while both ends' kernels still acknowledge them) never runs the statement, so
# its own time limits never fire.
DEADLINE_S = 2 * TIMEOUT_S


@dataclass(frozen=True, slots=True)
class LogRow:
    """One row of ``journal`` (``size`` set) or ``violations`` (``size`` 0); ``seq`` 0 before it is written."""

    session: str
    instance: str
    at: str  # when it happened, RFC 3339 in UTC
    data: str  # JSON text
    size: int = 0
    seq: int = 0
    time: float = 0.0  # a journal row's request time, seconds since the epoch (not a column: see ``append``)


@dataclass(frozen=True, slots=True)
class Window:
    """What a reader of one session's journal needs besides its rows.

    ``oldest``: the seq of the session's oldest row kept, or, with none kept, a seq above every seq
    handed out so far (a reader drops what it holds below it). ``last``: the newest seq a reader may
    move its cursor to: every row at or below it that will ever be visible is visible now.
    """

    oldest: int
    last: int


class SharedLog(Protocol):
    """The journal and violations rows of one shared state; every method may raise ``StoreUnavailable``."""

    where: str  # the database, for messages (no password)

    def append(self, rows: Sequence[LogRow], keep: int | None = None) -> Counter[str]:
        """Add journal rows, numbered in this order, in one transaction; with ``keep``, the sessions written
        to keep their newest ``keep`` rows in that same transaction (how many went, by session). A row whose
        ``time`` is before its session's last clear (``clear``'s ``before``) is left out."""

    def after(self, session: str, seq: int, limit: int) -> list[LogRow]:
        """The session's rows numbered above ``seq``, oldest first, at most ``limit``."""

    def newest(self, session: str, limit: int) -> list[LogRow]:
        """The session's newest ``limit`` rows, oldest first."""

    def row(self, session: str, seq: int) -> LogRow | None:
        """The session's row numbered ``seq``, while it is kept."""

    def window(self, session: str) -> Window: ...

    def count(self, session: str) -> int:
        """How many journal rows the session keeps."""

    def clear(self, session: str, before: float | None = None) -> int:
        """Delete the session's journal rows; how many. ``before``: rows of requests made before then that
        any instance appends later are left out too (the entries it has not written yet)."""

    def demand(self) -> float | None:
        """Record that a reader reads the journal now; how many seconds before the last reader did (None: never)."""

    def demand_age(self) -> float | None:
        """How many seconds ago a reader last read the journal (None: never), by the database's clock."""

    def keep_last(self, sessions: Iterable[str], keep: int) -> Counter[str]:
        """Delete all but the newest ``keep`` rows of each of these sessions; how many went, by session."""

    def keep_bytes(self, budget: int) -> Counter[str]:
        """Delete the oldest rows of all sessions until their sizes add up to ``budget`` at most."""

    def used_bytes(self) -> int:
        """The sizes of every journal row, added up."""

    def add_violation(self, row: LogRow, keep: int) -> int:
        """Add a violation, and keep the session's newest ``keep``; how many older ones went."""

    def violations(self, session: str, limit: int) -> list[LogRow]:
        """The session's newest ``limit`` violations, oldest first."""

    def count_violations(self, session: str) -> int: ...

    def clear_violations(self, session: str) -> None: ...

    def close(self) -> None: ...


def is_shared(settings: Settings) -> bool:
    """Whether other processes serve this state too: PostgreSQL always, a state file with ``--workers`` > 1."""
    return settings.state_url is not None or (settings.workers > 1 and settings.state is not None)


def open_log(settings: Settings) -> SharedLog | None:
    """The shared log of a shared state; None when the state is this process's alone. Connects on first use."""
    if settings.state_url is not None:
        return PostgresLog(settings.state_url)
    if is_shared(settings) and settings.state is not None:
        return SqliteLog(settings.state)
    return None


# -- the SQL both engines run -------------------------------------------------------------------------

_ROW = "session, instance, at, size, {data}, seq"
_VIOLATION = "session, instance, at, 0, {data}, seq"
_SQL = {
    "append": "INSERT INTO journal (session, instance, at, size, data) VALUES (?, ?, ?, ?, ?)",
    "after": f"SELECT {_ROW} FROM journal WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?",
    "newest": f"SELECT {_ROW} FROM journal WHERE session = ? ORDER BY seq DESC LIMIT ?",
    "row": f"SELECT {_ROW} FROM journal WHERE session = ? AND seq = ?",
    "count": "SELECT COUNT(*) FROM journal WHERE session = ?",
    "clear": "DELETE FROM journal WHERE session = ?",
    "mark_cleared": "INSERT INTO journal_cleared (session, at) VALUES (?, ?) "
    "ON CONFLICT (session) DO UPDATE SET at = excluded.at",
    "cleared": "SELECT at FROM journal_cleared WHERE session = ?",
    "demand_age": "SELECT {now} - read_at FROM journal_demand WHERE id = 1",
    "demand": "INSERT INTO journal_demand (id, read_at) VALUES (1, {now}) "
    "ON CONFLICT (id) DO UPDATE SET read_at = excluded.read_at",
    # The seq of the session's newest row that goes: the one `keep` rows below its newest.
    "keep_last": "DELETE FROM journal WHERE session = ? AND seq <= "
    "(SELECT seq FROM journal WHERE session = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    # The newest row whose own size and the sizes of every newer row pass the budget: it and all older go.
    "budget_cut": "SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq DESC) AS total FROM journal) AS t "
    "WHERE total > ? ORDER BY seq DESC LIMIT 1",
    "cut": "DELETE FROM journal WHERE seq <= ? RETURNING session",
    "used": "SELECT COALESCE(SUM(size), 0) FROM journal",
    "add_violation": "INSERT INTO violations (session, instance, at, data) VALUES (?, ?, ?, ?)",
    "keep_violations": "DELETE FROM violations WHERE session = ? AND seq <= "
    "(SELECT seq FROM violations WHERE session = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    "violations": f"SELECT {_VIOLATION} FROM violations WHERE session = ? ORDER BY seq DESC LIMIT ?",
    "count_violations": "SELECT COUNT(*) FROM violations WHERE session = ?",
    "clear_violations": "DELETE FROM violations WHERE session = ?",
}

Db = TypeVar("Db")
T = TypeVar("T")


def _rows(found: Iterable[Sequence[Any]]) -> list[LogRow]:
    return [
        LogRow(session, instance, at, data, int(size), int(seq)) for session, instance, at, size, data, seq in found
    ]


class _SqlLog:
    """The operations, over an engine's ``_write`` (one transaction) and ``_read`` (one statement or more)."""

    where = ""
    _sql: dict[str, str]

    _writer: _Connection
    _reader: _Connection

    def _use(self, connection: _Connection, work: Callable[[Any], T], transaction: bool) -> T:
        """``work`` on ``connection``, in one transaction when ``transaction``; each engine's faults as
        ``StoreUnavailable``, the connection dropped."""
        raise NotImplementedError

    def _write(self, work: Callable[[Any], T]) -> T:
        return self._use(self._writer, work, transaction=True)

    def _read(self, work: Callable[[Any], T]) -> T:
        return self._use(self._reader, work, transaction=False)

    def close(self) -> None:
        for connection in (self._writer, self._reader):
            with connection.lock:
                connection.drop()

    def _lock_order(self, db: Any) -> None:
        """Make seq order commit order (see the module's docstring); SQLite's writer lock does already."""

    def _window_sql(self) -> str:
        raise NotImplementedError

    def append(self, rows: Sequence[LogRow], keep: int | None = None) -> Counter[str]:
        if not rows:
            return Counter()

        def work(db: Any) -> Counter[str]:
            self._lock_order(db)  # also orders this append after a clear in progress: its mark is read next
            marks: dict[str, float] = {}
            for name in {r.session for r in rows}:
                found = db.execute(self._sql["cleared"], (name,)).fetchone()
                marks[name] = float(found[0]) if found is not None else -math.inf
            kept = [r for r in rows if r.time >= marks[r.session]]
            db.executemany(self._sql["append"], [(r.session, r.instance, r.at, r.size, r.data) for r in kept])
            return Counter() if keep is None else self._keep_last(db, {r.session for r in kept}, keep)

        return self._write(work)

    def after(self, session: str, seq: int, limit: int) -> list[LogRow]:
        return self._read(lambda db: _rows(db.execute(self._sql["after"], (session, seq, limit)).fetchall()))

    def newest(self, session: str, limit: int) -> list[LogRow]:
        found = self._read(lambda db: _rows(db.execute(self._sql["newest"], (session, limit)).fetchall()))
        found.reverse()
        return found

    def row(self, session: str, seq: int) -> LogRow | None:
        found = self._read(lambda db: _rows(db.execute(self._sql["row"], (session, seq)).fetchall()))
        return found[0] if found else None

    def window(self, session: str) -> Window:
        def work(db: Any) -> Window:
            oldest, newest, handed_out = db.execute(self._window_sql(), (session,)).fetchone()
            last = int(newest or 0)
            return Window(int(oldest) if oldest is not None else max(int(handed_out or 0), last) + 1, last)

        return self._read(work)

    def count(self, session: str) -> int:
        return int(self._read(lambda db: db.execute(self._sql["count"], (session,)).fetchone()[0]))

    def clear(self, session: str, before: float | None = None) -> int:
        def work(db: Any) -> int:
            self._lock_order(db)
            if before is not None:
                db.execute(self._sql["mark_cleared"], (session, before))
            return int(db.execute(self._sql["clear"], (session,)).rowcount)

        return self._write(work)

    def demand(self) -> float | None:
        def work(db: Any) -> float | None:
            found = db.execute(self._sql["demand_age"]).fetchone()
            db.execute(self._sql["demand"])
            return float(found[0]) if found is not None else None

        return self._write(work)

    def demand_age(self) -> float | None:
        found = self._read(lambda db: db.execute(self._sql["demand_age"]).fetchone())
        return float(found[0]) if found is not None else None

    def keep_last(self, sessions: Iterable[str], keep: int) -> Counter[str]:
        names = set(sessions)
        return self._write(lambda db: self._keep_last(db, names, keep)) if names else Counter()

    def _keep_last(self, db: Any, sessions: set[str], keep: int) -> Counter[str]:
        gone: Counter[str] = Counter()
        for name in sorted(sessions):
            deleted = db.execute(self._sql["keep_last"], (name, name, keep)).rowcount
            if deleted > 0:
                gone[name] += deleted
        return gone

    def keep_bytes(self, budget: int) -> Counter[str]:
        # Mostly within it: added up first without the write lock (SQLite's covers the whole file), as
        # finding the row to cut from reads every row again; rows added meanwhile wait for the next look.
        if self.used_bytes() <= budget:
            return Counter()

        def work(db: Any) -> Counter[str]:
            cut = db.execute(self._sql["budget_cut"], (budget,)).fetchone()
            if cut is None:
                return Counter()
            return Counter(session for (session,) in db.execute(self._sql["cut"], (cut[0],)).fetchall())

        return self._write(work)

    def used_bytes(self) -> int:
        return int(self._read(lambda db: db.execute(self._sql["used"]).fetchone()[0]))

    def add_violation(self, row: LogRow, keep: int) -> int:
        def work(db: Any) -> int:
            db.execute(self._sql["add_violation"], (row.session, row.instance, row.at, row.data))
            return int(db.execute(self._sql["keep_violations"], (row.session, row.session, keep)).rowcount)

        return self._write(work)

    def violations(self, session: str, limit: int) -> list[LogRow]:
        found = self._read(lambda db: _rows(db.execute(self._sql["violations"], (session, limit)).fetchall()))
        found.reverse()
        return found

    def count_violations(self, session: str) -> int:
        return int(self._read(lambda db: db.execute(self._sql["count_violations"], (session,)).fetchone()[0]))

    def clear_violations(self, session: str) -> None:
        self._write(lambda db: db.execute(self._sql["clear_violations"], (session,)))


class _Connection:
    """One connection, opened on first use, used by one thread at a time, closed after a failure."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self.opener = opener
        self.lock = threading.Lock()
        self.db: Any = None

    def get(self) -> Any:
        if self.db is None:
            self.db = self.opener()
        return self.db

    def drop(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            try:
                db.close()
            except Exception:  # noqa: S110 - a broken connection may fail to close; it is let go either way
                pass


# -- SQLite -------------------------------------------------------------------------------------------


class SqliteLog(_SqlLog):
    """The journal and violations tables of a state file, through connections of their own.

    The writer opens each transaction with ``BEGIN IMMEDIATE`` and waits up to ``TIMEOUT_S`` for the
    file's write lock (the store's writes hold it for milliseconds). The journal is not worth a disk
    sync: ``synchronous=NORMAL`` in WAL mode commits without one, and a crash may lose the last batch.
    Every batch deletes about as many old rows as it adds, each about a page: ``secure_delete=FAST``
    (Debian's SQLite zeroes every freed page by default, writing it to the WAL once more) leaves a freed
    page as it is and clears deleted rows only within pages written anyway. The rows hold nothing the
    journal does not show: credentials are masked before they are written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        # Seconds since the epoch by SQLite's clock, to the millisecond.
        now = "((julianday('now') - 2440587.5) * 86400.0)"
        self._sql = {name: sql.format(data="data", now=now) for name, sql in _SQL.items()}
        self._writer = _Connection(self._open)
        self._reader = _Connection(self._open)

    def _open(self) -> sqlite3.Connection:
        # mode=rw: never create a file where the state file should be.
        uri = Path(self.path).absolute().as_uri() + "?mode=rw"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=TIMEOUT_S)
        try:
            db.execute(f"PRAGMA busy_timeout={TIMEOUT_S * 1000}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=FAST")
        except BaseException:
            db.close()
            raise
        return db

    def _window_sql(self) -> str:
        return (
            "SELECT (SELECT MIN(seq) FROM journal WHERE session = ?), (SELECT MAX(seq) FROM journal), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'journal')"
        )

    def _use(self, connection: _Connection, work: Callable[[sqlite3.Connection], T], transaction: bool) -> T:
        with connection.lock:
            try:
                db = connection.get()
                if not transaction:
                    return work(db)
                db.execute("BEGIN IMMEDIATE")
                try:
                    done = work(db)
                    db.execute("COMMIT")
                    return done
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                connection.drop()
                raise StoreUnavailable(f"the shared journal in {self.where} cannot be used: {exc}") from exc


# -- PostgreSQL ---------------------------------------------------------------------------------------


def _postgres_params(url: str) -> dict[str, Any]:
    """The URL's parameters, with time limits where it sets none: an unreachable or silent server is
    given up on within ``TIMEOUT_S`` seconds instead of holding the writer forever."""
    from psycopg.conninfo import conninfo_to_dict

    defaults: dict[str, Any] = {
        "connect_timeout": TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": TIMEOUT_S,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": TIMEOUT_S * 1000,
        "application_name": "mockserver journal",
    }
    return {**defaults, **conninfo_to_dict(url)}


def masked_url(url: str) -> str:
    """Where a PostgreSQL URL points, without its password: host, port and database."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        found = conninfo_to_dict(url)
    except Exception:
        return "PostgreSQL"
    host, port, name = found.get("host", "localhost"), found.get("port", "5432"), found.get("dbname", "")
    return f"PostgreSQL at {host}:{port}/{name}"


class PostgresLog(_SqlLog):
    """The journal and violations tables of a PostgreSQL state, through psycopg connections of its own.

    Each call (and the settings sent as a connection opens) has ``DEADLINE_S`` to get its answer, kept by
    the PostgreSQL engine's watchdog (``storage.postgresql.Watchdog``): a call past it finds its connection
    shut, and the connection is thrown away.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = masked_url(url)
        now = "extract(epoch FROM clock_timestamp())::float8"
        self._sql = {name: sql.replace("?", "%s").format(data="data::text", now=now) for name, sql in _SQL.items()}
        self._writer = _Connection(self._open)
        self._reader = _Connection(self._open)

    def _open(self) -> Any:
        import psycopg

        from mockserver.storage import postgresql

        db = psycopg.connect(autocommit=True, **_postgres_params(self.url))
        try:
            with postgresql.WATCHDOG.watch(db, DEADLINE_S):
                db.execute(f"SET statement_timeout = {TIMEOUT_S * 1000}")
                db.execute(f"SET lock_timeout = {TIMEOUT_S * 1000}")
        except BaseException:
            db.close()
            raise
        return db

    def _window_sql(self) -> str:
        # pg_sequence_last_value: the last seq handed out (None before the first), committed or not.
        return (
            "SELECT (SELECT min(seq) FROM journal WHERE session = %s), (SELECT max(seq) FROM journal), "
            "pg_sequence_last_value(pg_get_serial_sequence('journal', 'seq')::regclass)"
        )

    def _lock_order(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", ORDER_LOCK)

    def _use(self, connection: _Connection, work: Callable[[Any], T], transaction: bool) -> T:
        import psycopg

        from mockserver.storage import postgresql

        with connection.lock:
            deadline = None
            try:
                db = connection.get()
                # The deadline is let go before the connection can be closed (drop): never a shut socket
                # that is no longer this connection's.
                with postgresql.WATCHDOG.watch(db, DEADLINE_S) as deadline:
                    if not transaction:
                        return work(db)
                    with db.transaction(), db.cursor() as cursor:
                        return work(cursor)
            except psycopg.Error as exc:
                connection.drop()
                reason = f"no answer within {DEADLINE_S} s" if deadline is not None and deadline.fired else None
                raise StoreUnavailable(
                    f"the shared journal in {self.where} cannot be used: {reason or _first_line(exc)}"
                ) from exc


def _first_line(error: Exception) -> str:
    # psycopg's messages can run to several lines (a hint, the query's position); one is enough here.
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
