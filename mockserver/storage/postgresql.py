"""The state in PostgreSQL (``--state postgresql://...``): any number of mock processes share one state.

- **The layout** is ``sql/postgresql/schema.sql``: the SQLite file's tables, column for column, plus
  each session's change log (``changes``), the shared journal and violations, and ``layout_versions``.
  ``prepare`` creates it in an empty database, or checks the one it finds, in one transaction under an
  advisory lock, so that instances starting together create it once. Later layouts will come as
  ``sql/postgresql/migrations/N.sql``, each moving the layout from N-1 to N.
- **One order per session.** Every write takes its session's advisory lock in its transaction
  (``pg_advisory_xact_lock`` of a hash of the name), reads the log rows after ``seen`` (the last one
  this process's state holds), and appends one row (``n`` = the last + 1) beside the rows it changes;
  the lock makes ``n`` safe and the writes of a session linearizable. A reader asks for the rows it
  missed (``missed``) before it answers. The first process to find no saved state seeds it, under the
  same lock (the store does it inside ``writing()``).
- **A write is two round trips**: ``BEGIN``, the lock and the log's new rows, sent together; then the
  save (one statement) with the ``COMMIT``. The writer is in autocommit and sends ``BEGIN`` and
  ``COMMIT`` itself, in pipelines: psycopg's own transactions would add a round trip for each. The
  first round trip only tries the lock (``pg_try_advisory_xact_lock``), so the server answers it at
  once; a write that finds the lock taken then waits for it in a third.
- **Connections.** One writing connection per process, one transaction at a time (as the SQLite file's
  writer), and one reading connection per thread (autocommit) for history, the log and loads, which
  never wait for a write in progress; a load reads the records and the log's last row in one snapshot.
- **Faults.** A connection that fails (refused, dropped, the server restarting) is thrown away and the
  caller gets ``StoreUnavailable`` (503). The next call connects again (one found broken since its last
  use is replaced at once), so the mock recovers by itself when PostgreSQL is back. Messages name the
  server, never a password. A write that failed before its ``COMMIT`` went out committed nothing, since
  its transaction died with the connection; one whose ``COMMIT`` got no answer may have been committed
  all the same, and its 503 says so: it is then in the log, and this process applies it with its next
  request, as every other does.
- **A server that stops answering** (it hangs, or the network drops packets while both ends' kernels
  still acknowledge them) is a 503 within seconds: every call has a deadline (``READ_S`` for a read, the
  catch-up and a write's first round trip; the server's lock wait and ``READ_S`` for a write that waits
  for the lock; ``WRITE_S`` for a write's statements and commit; ``WHOLE_S`` for a whole session's state
  read or written: a load, a reset, a restore, a snapshot), kept by a thread (``Watchdog``) that
  shuts the connection's socket when one passes. psycopg's blocking calls have no time limit of their
  own, and the server's limits (``statement_timeout``, ``lock_timeout``) never fire for a statement
  that never reached it. ``tcp_user_timeout`` and keepalives are a second line.
- **JSON as written.** Columns are ``json``, which keeps the text: a record comes back with its fields
  in the order the mock wrote them (``jsontext``), and psycopg reads it with ``json.loads``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mockserver.domain.timeutil import format_timestamp, parse_timestamp
from mockserver.settings import masked
from mockserver.spec import jsontext
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage.base import (
    RECORD_KINDS,
    Changes,
    LogEntry,
    MemoryHistory,
    Record,
    SavedSession,
    State,
    StateNotSaved,
    utc_now,
)
from mockserver.storage.history import DatabaseHistory, Statements
from mockserver.storage.sqlite_file import (
    COLUMNS,
    DEFAULT,
    HISTORY_TABLES,
    SESSION_TABLES,
    VERSIONS_KEY,
    StateFileError,
    audit_counts,
    session_column,
)

__all__ = [
    "DEFAULT",
    "LAYOUT_VERSION",
    "LOG_KEPT",
    "LayoutError",
    "LogEntry",
    "PostgresHistory",
    "PostgresState",
    "SavedSession",
    "prepare",
]

LAYOUT_VERSION = 1
# pg_advisory_xact_lock's key for creating or migrating the layout: any fixed number, the same in every
# instance ("mocksrvr" in ASCII, as an integer).
LAYOUT_LOCK = int.from_bytes(b"mocksrvr", "big") & 0x7FFF_FFFF_FFFF_FFFF
LOG_KEPT = 1000  # rows of a session's change log kept; a process further behind loads the session again
CONNECT_TIMEOUT = 3  # seconds: an unreachable server is a 503 soon, not a request hanging
LOCK_WAIT_MS = 15_000  # a write waits this long for its session's lock (another process's write)
IDLE_IN_TRANSACTION_MS = 60_000  # the server ends a connection left this long inside a transaction
_NOT_SAVED = "the change was not saved; nothing was changed"
# A commit sent that got no answer: the server may have committed it before it went quiet or the connection
# died. Then it is in the session's log, and this process applies it with its next request, as every other.
_MAYBE_SAVED = "its commit got no answer: the change may or may not have been saved; read it again to know"
T = TypeVar("T")
Connection = psycopg.Connection[Any]
Query = tuple[str, Sequence[Any]]
LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
TRY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(%s)"


class LayoutError(StateFileError):
    """A database whose layout the mock cannot use (refused at start, as a state file of another layout is)."""


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


def schema_sql() -> str:
    """The statements that create the layout, ``LAYOUT_VERSION``, in an empty database."""
    return (resources.files("mockserver.storage") / "sql" / "postgresql" / "schema.sql").read_text(encoding="utf-8")


def layout_version(db: Connection) -> int | None:
    """The layout the database holds; None when it holds none (no ``layout_versions`` table)."""
    table = db.execute("SELECT to_regclass('layout_versions')").fetchone()
    if table is None or table[0] is None:
        return None
    found = db.execute("SELECT max(version) FROM layout_versions").fetchone()
    return None if found is None or found[0] is None else int(found[0])


def prepare(db: Connection) -> int:
    """Create the layout in an empty database or check the one there; the layout version.

    ``LayoutError`` when the database holds another layout (a newer mock's, or an unknown one).
    """
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LAYOUT_LOCK,))
        version = layout_version(db)
        if version is None:
            db.execute(schema_sql().encode())  # no parameters: the whole script in one simple query
            version = layout_version(db)
    if version != LAYOUT_VERSION:
        raise LayoutError(
            f"the database holds mockserver's layout {version}, and this mock knows layout {LAYOUT_VERSION}: "
            "use a mock of that version, or another database"
        )
    return version


def session_lock(session: str) -> int:
    """The advisory lock key of a session's writes: a 64-bit hash of its name, the same in every process."""
    digest = hashlib.blake2b(session.encode(), digest_size=8, person=b"mock-session").digest()
    return int.from_bytes(digest, "big", signed=True)


def describe(url: str) -> str:
    """Where the database is, for messages: host, port and database name, never the user's password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (a connection string it cannot read)"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    return f"PostgreSQL at {host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


def _lost(db: Connection, exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (or the server) is gone, rather than one statement failing."""
    return db.closed or db.broken or isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


class _PipelineNoise(logging.Filter):
    """psycopg logs a warning when a pipeline ends on a connection that broke; the failure itself reaches
    the caller (``StoreUnavailable``), so the warning only repeats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating <psycopg.Pipeline")


logging.getLogger("psycopg").addFilter(_PipelineNoise())


# -- deadlines: a server that stops answering ------------------------------------------------------------

# How long a call may wait on an open connection before the mock gives up on the server (a 503). A server
# that hangs (or a network that drops packets while both ends' kernels still acknowledge them) answers
# nothing, and neither libpq nor the server's own timeouts end the wait: the server never got the query.
READ_S = 5.0  # a read: the catch-up, a load, a page of history
LOCK_STEP_S = LOCK_WAIT_MS / 1000 + READ_S  # taking a session's lock: the server's own lock wait, then a read
WRITE_S = 10.0  # a write's statements and its commit, once the lock is held
# A whole session's state read or written (a load; a reset, a restore, a snapshot, a deletion): its size is
# the state's, so it gets longer.
WHOLE_S = 30.0


class Deadline:
    """One call's time limit on one connection (``Watchdog.watch``); ``fired`` once it ended the connection."""

    __slots__ = ("at", "db", "fired", "seconds")

    def __init__(self, db: Connection, seconds: float) -> None:
        self.db = db
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.fired = False


class Watchdog:
    """Ends database calls that outlive their deadline: one thread per process, asleep until the earliest
    deadline armed, shuts the socket of a connection whose call overran. The call blocked on it wakes with
    an ``OperationalError`` (the connection is then broken and thrown away), so a blocking psycopg
    connection gets a time limit without a thread per call. Arming is a dictionary insertion under a lock.

    A connection is forgotten (``forget``) before it is closed, under the same lock as a shutdown: the
    watchdog never shuts a descriptor that the system has meanwhile given to another socket.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._armed: set[Deadline] = set()
        self._wakes_at = math.inf  # when the thread looks next (inf: asleep until a deadline is armed)
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, db: Connection, seconds: float) -> Iterator[Deadline]:
        """The block's calls on ``db`` end within ``seconds`` (an ``OperationalError``, ``fired`` set)."""
        deadline = Deadline(db, seconds)
        with self._lock:
            self._armed.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mockserver-pg-deadlines", daemon=True)
                self._thread.start()
            if deadline.at < self._wakes_at:
                self._wakes_at = deadline.at
                self._lock.notify()
        try:
            yield deadline
        finally:
            with self._lock:
                self._armed.discard(deadline)

    def extend(self, deadline: Deadline, seconds: float) -> None:
        """``deadline`` ends no sooner than ``seconds`` from now (a call that turned out to need longer)."""
        with self._lock:
            at = time.monotonic() + seconds
            if at > deadline.at:
                deadline.at = at
                deadline.seconds = max(deadline.seconds, seconds)  # what a 503 says it waited for

    def forget(self, db: Connection) -> None:
        """No deadline ends ``db`` any more (it is about to be closed)."""
        with self._lock:
            self._armed -= {deadline for deadline in self._armed if deadline.db is db}

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._armed if d.at <= now]:
                    self._armed.discard(deadline)
                    deadline.fired = True
                    _shut(deadline.db)
                self._wakes_at = min((d.at for d in self._armed), default=math.inf)
                self._lock.wait(None if self._wakes_at == math.inf else self._wakes_at - now)


def _shut(db: Connection) -> None:
    """Shut ``db``'s socket both ways: whatever waits on it wakes up; libpq finds the connection closed."""
    if db.closed:
        return
    try:
        duplicate = socket.socket(fileno=os.dup(db.fileno()))
    except (OSError, psycopg.Error):
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()  # the duplicate only: the connection's own descriptor stays for psycopg to close


WATCHDOG = Watchdog()


def _after_fork() -> None:
    # A forked worker inherits the lock's state and the armed deadlines, not the thread.
    global WATCHDOG
    WATCHDOG = Watchdog()


os.register_at_fork(after_in_child=_after_fork)


# -- the database as one process uses it ------------------------------------------------------------------


class Database:
    """One PostgreSQL database: a writing connection shared by every session's view, one transaction at a
    time, and a reading connection per thread. Connections are made when first needed and again after one
    failed, so the mock recovers by itself once the server is back.
    """

    def __init__(self, url: str) -> None:
        self.where = describe(url)
        self.shown = masked(url)  # the URL as given, its password masked: what a start that fails names
        params = conninfo_to_dict(url)
        self._password = str(params.get("password") or "")
        # The user's own settings win; these only fill in what the URL leaves out.
        defaults: dict[str, str | int] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "application_name": "mockserver",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            # Bytes sent and not acknowledged this long: the connection is dead (a second line behind the
            # deadlines, for a network that went away while a call waited).
            "tcp_user_timeout": int(WRITE_S * 1000),
            # A transaction left open (a process stopped between two statements, a network that went
            # quiet) gives its session's lock back within a minute; a write that waits longer than that
            # for a lock is a 503 rather than a request that hangs.
            "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
            f"-c lock_timeout={LOCK_WAIT_MS}",
        }
        self._conninfo = make_conninfo(url, **{key: value for key, value in defaults.items() if key not in params})
        self.lock = threading.RLock()  # the writing connection, one transaction at a time
        self._writer: Connection | None = None
        self._depth = 0  # transactions open on the writer (the outer one commits; the inner ones join it)
        self._after: list[Callable[[], None]] = []  # run once the outer transaction committed
        self._held: set[int] = set()  # the advisory locks the transaction in progress holds
        self._deadline: Deadline | None = None  # the transaction's, once it holds its lock
        # Statements sent with the COMMIT (one round trip for both), each with what to do with its row.
        self._deferred: list[tuple[str, dict[str, Any], Callable[[tuple[Any, ...] | None], None]]] = []
        self.fetched: list[tuple[Any, ...]] = []  # the rows of the query a transaction began with
        self._readers = threading.local()
        self._opened: list[tuple[threading.Thread, Connection]] = []
        self._opened_lock = threading.Lock()
        self.closed = False

    # -- errors --------------------------------------------------------------------------------------

    def unavailable(
        self,
        exc: BaseException,
        writing: bool,
        deadline: Deadline | None = None,
        committing: bool = False,
        starting: bool = False,
    ) -> StoreUnavailable:
        """The 503 of a call that failed with ``exc``. ``deadline``: the call's, when it ended the call;
        ``committing``: the failure came in answer to a write's COMMIT, which may then have been committed;
        ``starting``: the mock's first call, at its start (where the user reads the URL they gave)."""
        if deadline is not None and deadline.fired:
            reason = f"no answer within {deadline.seconds:g} s"
        else:
            reason = _first_line(exc)
        if self._password:
            reason = reason.replace(self._password, "***")
        # A server that answered the COMMIT with an error (sqlstate set) rolled the transaction back.
        unknown = committing and getattr(exc, "sqlstate", None) is None
        what = f"; {_MAYBE_SAVED if unknown else _NOT_SAVED}" if writing else ""
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreUnavailable(
                f"the state store is busy ({self.where}: another process held this session's write lock for "
                f"{LOCK_WAIT_MS // 1000} s){what}; try again"
            )
        if starting:
            return StoreUnavailable(f"the state store cannot be reached at {self.shown} ({reason})")
        return StoreUnavailable(f"the state store cannot be reached ({self.where}: {reason}){what}")

    def _not_saved(self, exc: BaseException) -> StateNotSaved:
        reason = _first_line(exc)
        if self._password:
            reason = reason.replace(self._password, "***")
        return StateNotSaved(f"{self.where}: the change was not saved ({reason}); nothing was changed")

    # -- connections ---------------------------------------------------------------------------------

    def connect(self, writing: bool, starting: bool = False) -> Connection:
        """A new connection, in autocommit: the writer opens and ends its transactions itself (``BEGIN`` sent
        with a write's first statements, ``COMMIT`` with its last), which saves psycopg's own round trip for
        ``BEGIN``."""
        if self.closed:
            raise StoreUnavailable(f"the state store was closed ({self.where})")
        try:
            db = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self.unavailable(exc, writing=writing, starting=starting) from None
        return db

    def _discard(self, db: Connection) -> None:
        WATCHDOG.forget(db)
        try:
            db.close()
        except psycopg.Error:
            pass

    def _reader(self) -> tuple[Connection, bool]:
        """This thread's reading connection, and whether it was made just now."""
        db: Connection | None = getattr(self._readers, "db", None)
        if db is not None and not db.closed:
            return db, False
        db = self.connect(writing=False)
        # Loads read the records and the log's last row of one moment.
        db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with self._opened_lock:
            if self.closed:
                self._discard(db)
                raise StoreUnavailable(f"the state store was closed ({self.where})")
            # Threads come and go (a test's, a server's pool): close what the ended ones left open.
            alive = [(thread, other) for thread, other in self._opened if thread.is_alive() and not other.closed]
            for thread, other in self._opened:
                if (thread, other) not in alive:
                    self._discard(other)
            self._opened = [*alive, (threading.current_thread(), db)]
        self._readers.db = db
        return db, True

    def read(self, work: Callable[[Connection], T], seconds: float | None = None) -> T:
        """``work`` on this thread's reading connection. A connection found broken (the server restarted
        since its last use) is replaced once; a failure on a new one is ``StoreUnavailable``."""
        while True:
            db, new = self._reader()
            try:
                with WATCHDOG.watch(db, READ_S if seconds is None else seconds) as deadline:
                    return work(db)
            except psycopg.Error as exc:
                if not _lost(db, exc):
                    raise
                stale = not new and db.broken and not deadline.fired
                self._readers.db = None
                self._discard(db)
                if not stale:
                    raise self.unavailable(exc, writing=False, deadline=deadline) from None

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """What ``sql`` selects from the last committed state; never waits for a write in progress."""
        return self.read(lambda db: db.execute(sql, parameters).fetchall())

    def _begin(self, key: int, then: Query | None) -> Connection:
        """The writer, in a new transaction that holds the advisory lock ``key``, and ``then``'s rows in
        ``fetched`` (sent with the lock: one round trip; its snapshot is taken once the lock is held). A
        writer found broken (the server restarted since the last write) is replaced once, as nothing was
        done on it yet."""
        while True:
            db, new = self._writer, False
            if db is None or db.closed:
                db, new = self.connect(writing=True), True
                self._writer = db
            try:
                self.fetched = []
                # Most writes find the lock free, and the server answers at once: one that says nothing for
                # READ_S is gone, not busy.
                with WATCHDOG.watch(db, READ_S) as deadline:
                    if self._locked(db, TRY_LOCK_SQL, key, then, begin=True):
                        return db
                # Another process's write holds it: wait in the server's queue (lock_timeout bounds the wait).
                with WATCHDOG.watch(db, LOCK_STEP_S) as deadline:
                    self._locked(db, LOCK_SQL, key, then, begin=False)
                    return db
            except psycopg.Error as exc:
                stale = not new and db.broken and not deadline.fired
                self._abort(db)
                if not stale:
                    raise self._failed(db, exc, deadline) from None

    def _locked(self, db: Connection, lock: str, key: int, then: Query | None, begin: bool) -> bool:
        """Send ``lock`` of ``key`` and ``then`` together, after ``BEGIN`` when ``begin`` (one round trip);
        whether the lock is held. Once it is, ``then``'s rows are in ``fetched``: its snapshot was taken
        after the lock was."""
        with db.pipeline():
            if begin:
                db.execute("BEGIN")
            taken = db.execute(lock, (key,))
            cursor = None if then is None else db.execute(*then)
        row = taken.fetchone()
        if row is not None and row[0] is False:  # pg_advisory_xact_lock returns void (None)
            return False
        self.fetched = [] if cursor is None else cursor.fetchall()
        return True

    def _abort(self, db: Connection) -> None:
        if not db.closed and not db.broken:
            try:
                db.rollback()
                return
            except psycopg.Error:
                pass
        self._discard(db)
        if db is self._writer:
            self._writer = None

    def _failed(
        self, db: Connection, exc: psycopg.Error, deadline: Deadline, committing: bool = False
    ) -> StoreUnavailable | StateNotSaved:
        if _lost(db, exc) or deadline.fired:
            return self.unavailable(exc, writing=True, deadline=deadline, committing=committing)
        return self._not_saved(exc)

    @contextmanager
    def transaction(self, key: int, then: Query | None = None, seconds: float | None = None) -> Iterator[Connection]:
        """One transaction on the writer, holding the advisory lock ``key`` (and ``then``'s rows in
        ``fetched``); it commits when the outer block ends. A failure rolls it back (or loses it with the
        connection) and raises ``StoreUnavailable`` (the server cannot be reached) or ``StateNotSaved``;
        nothing was committed either way. ``seconds``: how long its statements and commit may take (a
        block that joins the transaction in progress gives it that long from now, if that is longer)."""
        with self.lock:
            if self._depth:  # inside another transaction of this thread: join it
                assert self._writer is not None
                if seconds is not None and self._deadline is not None:
                    WATCHDOG.extend(self._deadline, seconds)
                self._send_deferred(self._writer)  # what comes next follows it
                if key not in self._held:
                    self._writer.execute(LOCK_SQL, (key,))
                    self._held.add(key)
                self.fetched = [] if then is None else self._writer.execute(*then).fetchall()
                self._depth += 1
                try:
                    yield self._writer
                finally:
                    self._depth -= 1
                return
            db = self._begin(key, then)
            self._depth = 1
            self._held = {key}
            committing = False
            try:
                # The write's statements, its commit, or the rollback of a write that failed: bounded.
                with WATCHDOG.watch(db, WRITE_S if seconds is None else seconds) as deadline:
                    self._deadline = deadline
                    try:
                        yield db
                        committing = True
                        self._commit(db)
                    except BaseException:
                        self._abort(db)
                        raise
            except psycopg.Error as exc:
                raise self._failed(db, exc, deadline, committing) from None
            else:
                for done in self._after:
                    done()
            finally:
                self._depth = 0
                self._after = []
                self._held = set()
                self._deferred = []
                self._deadline = None

    def defer(self, sql: str, parameters: dict[str, Any], done: Callable[[tuple[Any, ...] | None], None]) -> None:
        """Run ``sql`` in the transaction in progress, sent with its COMMIT when nothing follows it (one round
        trip for both), else before what follows; ``done`` gets its first row (None without one) when it ran.
        Binary parameters (``%(name)b``) spare the text form's quoting of every array element."""
        self._deferred.append((sql, parameters, done))

    def _send_deferred(self, db: Connection) -> None:
        deferred, self._deferred = self._deferred, []
        for sql, parameters, done in deferred:
            done(db.execute(sql, parameters).fetchone())

    def _commit(self, db: Connection) -> None:
        """Commit, with the statements deferred until now in the same round trip (a pipeline: one sync, at its
        end; ``Connection.commit()`` would sync once more)."""
        if not self._deferred:
            db.execute("COMMIT")
            return
        deferred, self._deferred = self._deferred, []
        with db.pipeline():
            sent = [(db.execute(sql, parameters), done) for sql, parameters, done in deferred]
            db.execute("COMMIT")
        for cursor, done in sent:
            done(cursor.fetchone() if cursor.description is not None else None)

    def on_commit(self, done: Callable[[], None]) -> None:
        """Call ``done`` once the transaction in progress has committed (never, if it does not)."""
        self._after.append(done)

    def prepare(self, fresh: bool) -> None:
        """Create or check the layout; ``fresh``: start again, every session's state gone (``_wipe``)."""
        with self.lock:
            db = self.connect(writing=False, starting=True)
            self._writer = db
            try:
                # The layout lock may wait for another instance's start; then the layout, or a wipe.
                with WATCHDOG.watch(db, LOCK_STEP_S + WRITE_S) as deadline:
                    prepare(db)
                    if fresh:
                        with db.transaction():
                            self._wipe(db)
            except psycopg.Error as exc:
                self._abort(db)
                raise (
                    self.unavailable(exc, writing=False, deadline=deadline, starting=True)
                    if _lost(db, exc)
                    else LayoutError(f"{self.where}: {_first_line(exc)}")
                ) from None

    @staticmethod
    def _wipe(db: Connection) -> None:
        """Every session's state goes (the default one's snapshots stay, as with a state file); each
        session's log keeps one row that tells the processes still running: ``dropped``, or ``replace`` for
        the default state, which the first store to find it empty seeds again."""
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LAYOUT_LOCK,))
        for table in _SESSION_TABLES:
            where = f"{session_column(table)} != ''" if table.startswith("snapshot") else "true"
            db.execute(f"DELETE FROM {table} WHERE {where}")  # noqa: S608 - fixed names
        db.execute(
            "INSERT INTO changes (session, n, data) SELECT session, max(n) + 1, "
            "CASE WHEN session = '' THEN %s ELSE %s END::json FROM changes GROUP BY session",
            (jsontext.text({"kind": "replace"}), jsontext.text({"kind": "dropped", "expired": False})),
        )
        db.execute("DELETE FROM changes AS c WHERE n < (SELECT max(n) FROM changes WHERE session = c.session)")

    def close(self) -> None:
        with self.lock, self._opened_lock:
            if self.closed:
                return
            self.closed = True
            for _, db in self._opened:
                self._discard(db)
            self._opened = []
            if self._writer is not None:
                self._discard(self._writer)
                self._writer = None


# -- a session's state --------------------------------------------------------------------------------------

# What a session's state is made of; its log (changes) outlives it, to tell other processes it went.
_SESSION_TABLES = tuple(table for table in SESSION_TABLES if table != "changes")
LOG_SQL = "SELECT n, data FROM changes WHERE session = %s AND n > %s ORDER BY n"
# Appends a row to a session's log (n: the last + 1; the session's lock is held) and keeps its last rows.
APPEND_SQL = (
    "WITH added AS (INSERT INTO changes (session, n, data) "
    "SELECT %(session)s, COALESCE(max(n), 0) + 1, %(data)s FROM changes WHERE session = %(session)s RETURNING n), "
    "pruned AS (DELETE FROM changes WHERE session = %(session)s AND n <= (SELECT n FROM added) - %(kept)s) "
    "SELECT n FROM added"
)
# A write in one statement: its records saved and removed, its history rows and their counts, the session's
# counters and last use, its log row (when it changed more than history) and the log's pruning.
# Data-modifying parts of one statement see one snapshot; none of them reads what another writes, and a
# write never saves and removes one record. Its parameters go in binary (%(name)b): in text, psycopg quotes
# every character of every JSON text in an array that needs it (a regular expression, a call per quote).
SAVE_SQL = """
WITH saved AS (
    INSERT INTO records (session, kind, key, data)
    SELECT %(session)b, kind, key, data::json
    FROM unnest(%(kinds)b::text[], %(keys)b::text[], %(data)b::text[]) AS r (kind, key, data)
    ON CONFLICT (session, kind, key) DO UPDATE SET data = excluded.data, row_version = records.row_version + 1
), removed AS (
    DELETE FROM records WHERE session = %(session)b
    AND (kind, key) IN (SELECT * FROM unnest(%(gone_kinds)b::text[], %(gone_keys)b::text[]))
), versions AS (
    INSERT INTO versions (session, id, profile_id, version, data)
    SELECT %(session)b, id, profile_id, version, data::json
    FROM unnest(%(v_ids)b::bigint[], %(v_profiles)b::bigint[], %(v_versions)b::integer[], %(v_data)b::text[])
        AS v (id, profile_id, version, data)
), audit AS (
    INSERT INTO audit (session, id, profile_id, action, user_id, data)
    SELECT %(session)b, id, profile_id, action, user_id, data::json
    FROM unnest(%(a_ids)b::bigint[], %(a_profiles)b::bigint[], %(a_actions)b::text[], %(a_users)b::text[],
                %(a_data)b::text[]) AS a (id, profile_id, action, user_id, data)
), counted AS (
    INSERT INTO history_counts (session, key, n)
    SELECT %(session)b, key, n FROM unnest(%(count_keys)b::text[], %(count_ns)b::bigint[]) AS c (key, n)
    ON CONFLICT (session, key) DO UPDATE SET n = history_counts.n + excluded.n
), used AS (
    UPDATE sessions SET counters = COALESCE(%(counters)b::text::json, counters),
        last_used = COALESCE(%(used)b::text, last_used)
    WHERE name = %(session)b AND (%(counters)b::text IS NOT NULL OR %(used)b::text IS NOT NULL)
), added AS (
    INSERT INTO changes (session, n, data)
    SELECT %(session)b, COALESCE(max(n), 0) + 1, %(log)b::text::json FROM changes WHERE session = %(session)b
    HAVING %(log)b::text IS NOT NULL
    RETURNING n
), pruned AS (
    DELETE FROM changes WHERE session = %(session)b AND n <= (SELECT n FROM added) - %(kept)b
)
SELECT n FROM added
"""


class PostgresState:
    """A PostgreSQL database, seen as one session's state: ``PostgresState(url)`` connects and is the default
    session; ``view(name)`` is another session of the same database (one ``Database``: one writing
    connection and a reading connection per thread).

    Other processes write the same state (``shared``): ``writing()`` is a transaction that holds the
    session's lock and yields what they committed since this view last saw; ``missed()`` asks for it
    without the lock. Save through each view from one thread at a time (its store's lock guarantees it).
    """

    shared = True
    reads_wait = True  # missed() is a round trip to the server

    def __init__(self, url: str, fresh: bool = False, instance: str | None = None) -> None:
        """``instance``: this process's name in the shared journal and violations (None: host:pid)."""
        self.url = url
        self.instance = instance
        self._db = Database(url)
        self._owner = True
        self._bind(DEFAULT)
        try:
            self._db.prepare(fresh)
        except BaseException:
            self._db.close()
            raise

    def _bind(self, session: str) -> None:
        self.session = session
        self._key = session_lock(session)
        self._dropped = False
        # What a new session's row says (the registry of sessions sets them before the first save).
        self.created_at = ""
        self.chaos: dict[str, Any] = {}
        self.now: Callable[[], str] | None = None  # with a clock, each save records when the session was used
        # The n of the last log row the state in memory holds: set by load(), by a write of this view, and
        # by the store as it applies the rows writing() and missed() return.
        self.seen = 0

    def view(self, session: str) -> PostgresState:
        """The state of another session, in the same database."""
        other = object.__new__(PostgresState)
        other.url = self.url
        other.instance = self.instance
        other._db = self._db
        other._owner = False
        other._bind(session)
        return other

    def sessions(self) -> list[SavedSession]:
        """Every named session the database keeps, oldest first."""
        rows = self._db.rows(
            "SELECT name, created_at, last_used, chaos FROM sessions WHERE name != '' ORDER BY created_at, name"
        )
        return [SavedSession(name, created, used, chaos) for name, created, used, chaos in rows]

    # -- what other processes did ------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[list[LogEntry]]:
        """A transaction holding this session's write lock; yields the log rows after ``seen``, which other
        processes committed. ``save``, ``replace``, ``restore_snapshot``, ``save_snapshot``, ``set_chaos``
        and ``drop`` inside it join the transaction, which commits when the block ends; a failure raises
        ``StateNotSaved`` or ``StoreUnavailable`` having committed nothing, and leaves ``seen`` as the
        caller set it while applying the rows."""
        with self._transaction((LOG_SQL, (self.session, self.seen))):
            yield [LogEntry(int(n), data) for n, data in self._db.fetched]

    def missed(self) -> list[LogEntry]:
        """The log rows after ``seen`` (others' writes), without a lock: one indexed query, [] when none."""
        return [LogEntry(int(n), data) for n, data in self._db.rows(LOG_SQL, (self.session, self.seen))]

    def _log(self, db: Connection, data: dict[str, Any] | str, kept: int = LOG_KEPT) -> int:
        """Append a row (``data``, or its JSON text) to the session's log; its ``n``, seen once committed."""
        text = data if isinstance(data, str) else jsontext.text(data)
        found = db.execute(APPEND_SQL, {"session": self.session, "data": text, "kept": kept}).fetchone()
        assert found is not None
        return self._logged(int(found[0]))

    def _logged(self, n: int) -> int:
        """Row ``n`` of the log is this view's: seen once its transaction commits."""

        def committed() -> None:
            # Caught up under the lock, this row is the next one: seen. Otherwise (a write made outside
            # writing()) the rows before it are not applied yet, and it comes back with them.
            if self.seen == n - 1:
                self.seen = n

        self._db.on_commit(committed)
        return n

    # -- the live state ----------------------------------------------------------------------------

    def load(self) -> State | None:
        """The saved state, or None when the database holds none for this session. Its history stays in the
        database. Read in one snapshot with the log's last row (``seen``), the session's chaos and when it
        was created."""

        def read(db: Connection) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]], int]:
            with db.transaction():  # repeatable read: the records and the log's last row of one moment
                row = db.execute(
                    "SELECT counters, chaos, created_at FROM sessions WHERE name = %s", (self.session,)
                ).fetchone()
                records = (
                    db.execute(
                        "SELECT kind, data FROM records WHERE session = %s ORDER BY kind, seq", (self.session,)
                    ).fetchall()
                    if row is not None
                    else []
                )
                last = db.execute("SELECT max(n) FROM changes WHERE session = %s", (self.session,)).fetchone()
            return row, records, int(last[0]) if last is not None and last[0] is not None else 0

        row, records, last = self._db.read(read, WHOLE_S)
        self.seen = last
        if row is None:
            return None
        self.chaos, self.created_at = row[1], row[2]
        found: dict[str, list[Record]] = {kind: [] for kind in RECORD_KINDS}
        for kind, data in records:
            found[kind].append(data)
        return State.from_dict(_state_data(found, row[0]), history=PostgresHistory(self))

    def save(self, changes: Changes) -> None:
        """Write one change in one transaction with its log row, or raise and write nothing.

        One statement (``SAVE_SQL``), sent with the transaction's COMMIT: a write inside ``writing()`` is
        two round trips, the lock with the log's new rows, then this and the commit."""
        saved = [jsontext.text(record) for _, _, record in changes.saved]
        counts = audit_counts((r["access_profile_id"], r["action"], r["user_id"], 1) for r in changes.audit)
        if changes.versions:
            counts[VERSIONS_KEY] = len(changes.versions)
        logged = changes.saved or changes.removed or changes.counters is not None  # history alone is not in memory
        parameters = {
            "session": self.session,
            "kinds": [kind for kind, _, _ in changes.saved],
            "keys": [key for _, key, _ in changes.saved],
            "data": saved,
            "gone_kinds": [kind for kind, _ in changes.removed],
            "gone_keys": [key for _, key in changes.removed],
            "v_ids": [r["id"] for r in changes.versions],
            "v_profiles": [r["access_profile_id"] for r in changes.versions],
            "v_versions": [r["version"] for r in changes.versions],
            "v_data": [jsontext.text(r) for r in changes.versions],
            "a_ids": [r["id"] for r in changes.audit],
            "a_profiles": [r["access_profile_id"] for r in changes.audit],
            "a_actions": [r["action"] for r in changes.audit],
            "a_users": [r["user_id"] for r in changes.audit],
            "a_data": [jsontext.text(r) for r in changes.audit],
            "count_keys": list(counts),
            "count_ns": list(counts.values()),
            "counters": None if changes.counters is None else jsontext.text(changes.counters),
            "used": None if self.now is None else self.now(),
            "log": _write_entry(changes, saved) if logged else None,
            "kept": LOG_KEPT,
        }
        with self._transaction():
            self._db.defer(SAVE_SQL, parameters, self._saved)

    def _saved(self, found: tuple[Any, ...] | None) -> None:
        if found is not None:  # the log row's n (none when only history was written)
            self._logged(int(found[0]))

    def replace(self, state: State) -> State:
        """Make the database hold exactly ``state`` for this session (a start from the fixtures, a reset, a
        restore). Returns the state to use from now on: the same records, history read from the database.
        """
        versions, audit = state.history.rows()
        with self._transaction(seconds=WHOLE_S) as db, db.pipeline():
            self._clear(db)
            db.cursor().executemany(
                "INSERT INTO records (session, kind, key, data) VALUES (%s, %s, %s, %s)", self._rows(state.records())
            )
            append_history(db, versions, audit, self.session)
            self._set_counters(db, state.counters)
            self._log(db, {"kind": "replace"})
        return state.copy(history=PostgresHistory(self))

    def set_chaos(self, chaos: dict[str, Any]) -> None:
        """Keep the session's chosen chaos."""
        with self._transaction() as db:
            db.execute("UPDATE sessions SET chaos = %s WHERE name = %s", (jsontext.text(chaos), self.session))
            self._log(db, {"kind": "chaos", "chaos": chaos})
        self.chaos = chaos

    def drop(self, idle_before: datetime | None = None) -> bool:
        """Delete everything of this session; later saves of this view are refused; whether it was dropped.

        A ``"dropped"`` row tells the other processes (the log's older rows go; that one stays, so the log
        of a session made again goes on from it). ``idle_before``: only when no process used the session
        since then, and the row says it expired.
        """
        with self._transaction(seconds=WHOLE_S) as db:
            if idle_before is not None:
                row = db.execute("SELECT last_used FROM sessions WHERE name = %s", (self.session,)).fetchone()
                if row is not None and _instant(row[0]) >= idle_before:
                    return False
            for table in _SESSION_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {session_column(table)} = %s", (self.session,))  # noqa: S608
            self._log(db, {"kind": "dropped", "expired": idle_before is not None}, kept=1)
        self._dropped = True
        return True

    def last_used(self) -> datetime | None:
        """When any process last used the session, as the database says; None when it holds no such session."""
        row = self._db.rows("SELECT last_used FROM sessions WHERE name = %s", (self.session,))
        return _instant(row[0][0]) if row else None

    def touch(self) -> None:
        """Record that the session was used now (``now``) without changing it: a read, in shared mode."""
        if self.now is None:
            return
        with self._transaction() as db:
            db.execute("UPDATE sessions SET last_used = %s WHERE name = %s", (self.now(), self.session))

    # -- named snapshots: copied inside the database, so even a long history never passes through memory

    def save_snapshot(self, name: str, created_at: str, state: State) -> int:
        """Keep the state (the records of ``state``, the history in the database) under ``name``."""
        with self._transaction(seconds=WHOLE_S) as db:
            self._drop_snapshot(db, name)
            db.execute(
                "INSERT INTO snapshots (session, name, created_at, profiles, data) VALUES (%s, %s, %s, %s, %s)",
                (self.session, name, created_at, len(state.profiles), jsontext.text(_without_history(state))),
            )
            for table in ("versions", "audit"):
                db.execute(
                    f"INSERT INTO snapshot_{table} (session, snapshot, {COLUMNS[table]}) "  # noqa: S608
                    f"SELECT session, %s, {COLUMNS[table]} FROM {table} WHERE session = %s",
                    (name, self.session),
                )
        return len(state.profiles)

    def restore_snapshot(self, name: str) -> State | None:
        """Make the snapshot the live state; None when there is no snapshot of that name."""
        with self._transaction(seconds=WHOLE_S) as db:
            row = db.execute(
                "SELECT data FROM snapshots WHERE session = %s AND name = %s", (self.session, name)
            ).fetchone()
            if row is None:
                return None
            state = State.from_dict({**row[0], "versions": [], "audit": []}, history=PostgresHistory(self))
            self._clear(db)
            db.cursor().executemany(
                "INSERT INTO records (session, kind, key, data) VALUES (%s, %s, %s, %s)", self._rows(state.records())
            )
            for table in ("versions", "audit"):
                db.execute(
                    f"INSERT INTO {table} (session, {COLUMNS[table]}) "  # noqa: S608 - fixed names
                    f"SELECT session, {COLUMNS[table]} FROM snapshot_{table} WHERE session = %s AND snapshot = %s",
                    (self.session, name),
                )
            recount(db, self.session)
            self._set_counters(db, state.counters)
            self._log(db, {"kind": "replace"})
        return state

    def delete_snapshot(self, name: str) -> bool:
        with self._transaction() as db:
            return self._drop_snapshot(db, name)

    def snapshots(self) -> dict[str, tuple[str, int]]:
        """Name -> (when it was taken, number of profiles)."""
        rows = self._db.rows(
            "SELECT name, created_at, profiles FROM snapshots WHERE session = %s ORDER BY name", (self.session,)
        )
        return {name: (created_at, profiles) for name, created_at, profiles in rows}

    def close(self) -> None:
        """Close the connections (the view that opened them only)."""
        if self._owner:
            self._db.close()

    # -- reading history (PostgresHistory) -----------------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Record]:
        """Records (JSON in the one column selected) of this session: ``sql``'s first parameter is the session."""
        return [data for (data,) in self._db.rows(sql, (self.session, *parameters))]

    def count(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """The one number ``sql`` selects (0 when it finds no row)."""
        found = self._db.rows(sql, (self.session, *parameters))
        return int(found[0][0]) if found else 0

    # -- helpers -----------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, then: Query | None = None, seconds: float | None = None) -> Iterator[Connection]:
        if self._dropped:
            raise StateNotSaved(f"the session {self.session!r} was deleted; {_NOT_SAVED}")
        with self._db.transaction(self._key, then, seconds) as db:
            yield db

    def _clear(self, db: Connection) -> None:
        for table in ("records", *HISTORY_TABLES):
            db.execute(f"DELETE FROM {table} WHERE session = %s", (self.session,))  # noqa: S608 - fixed table names

    def _set_counters(self, db: Connection, counters: dict[str, int]) -> None:
        created = self.created_at or format_timestamp(utc_now())
        used = self.now() if self.now is not None else created
        db.execute(
            "INSERT INTO sessions (name, created_at, last_used, counters, chaos) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET counters = excluded.counters, last_used = excluded.last_used",
            (self.session, created, used, jsontext.text(counters), jsontext.text(self.chaos)),
        )

    def _rows(self, records: Iterator[tuple[str, str, Record]]) -> list[tuple[str, str, str, str]]:
        return [(self.session, kind, key, jsontext.text(record)) for kind, key, record in records]

    def _drop_snapshot(self, db: Connection, name: str) -> bool:
        where = (self.session, name)
        found = db.execute("DELETE FROM snapshots WHERE session = %s AND name = %s", where).rowcount > 0
        db.execute("DELETE FROM snapshot_versions WHERE session = %s AND snapshot = %s", where)
        db.execute("DELETE FROM snapshot_audit WHERE session = %s AND snapshot = %s", where)
        return found


def _instant(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:  # not a time the mock wrote: long ago
        return datetime.min.replace(tzinfo=utc_now().tzinfo)


def _write_entry(changes: Changes, saved: Sequence[str]) -> str:
    """A ``"write"`` log row's JSON, reusing each saved record's text (made once for both tables)."""
    parts = [
        f"[{jsontext.text(kind)},{jsontext.text(key)},{text}]"
        for (kind, key, _), text in zip(changes.saved, saved, strict=True)
    ]
    removed = jsontext.text([[kind, key] for kind, key in changes.removed])
    counters = jsontext.text(changes.counters)
    return f'{{"kind":"write","saved":[{",".join(parts)}],"removed":{removed},"counters":{counters}}}'


# -- history rows and their kept counts -------------------------------------------------------------------


def _count(db: Connection, session: str, counts: Counter[str]) -> None:
    db.cursor().executemany(
        "INSERT INTO history_counts (session, key, n) VALUES (%s, %s, %s) "
        "ON CONFLICT (session, key) DO UPDATE SET n = history_counts.n + excluded.n",
        [(session, key, n) for key, n in counts.items()],
    )


def append_history(db: Connection, versions: Sequence[Record], audit: Sequence[Record], session: str) -> None:
    """Append history rows, and count them in the same transaction."""
    counts = audit_counts((r["access_profile_id"], r["action"], r["user_id"], 1) for r in audit)
    if versions:
        counts[VERSIONS_KEY] = len(versions)
    _count(db, session, counts)
    db.cursor().executemany(
        "INSERT INTO versions (session, id, profile_id, version, data) VALUES (%s, %s, %s, %s, %s)",
        [(session, r["id"], r["access_profile_id"], r["version"], jsontext.text(r)) for r in versions],
    )
    db.cursor().executemany(
        "INSERT INTO audit (session, id, profile_id, action, user_id, data) VALUES (%s, %s, %s, %s, %s, %s)",
        [(session, r["id"], r["access_profile_id"], r["action"], r["user_id"], jsontext.text(r)) for r in audit],
    )


def recount(db: Connection, session: str) -> None:
    """Count a session's history again from its rows (after a whole history was copied in)."""
    db.execute("DELETE FROM history_counts WHERE session = %s", (session,))
    found = db.execute(
        "SELECT profile_id, action, user_id, count(*) FROM audit WHERE session = %s "
        "GROUP BY profile_id, action, user_id",
        (session,),
    ).fetchall()
    counts = audit_counts(found)
    versions = db.execute("SELECT count(*) FROM versions WHERE session = %s", (session,)).fetchone()
    counts[VERSIONS_KEY] = int(versions[0]) if versions is not None else 0
    _count(db, session, counts)


class PostgresHistory(DatabaseHistory):
    """Version and audit rows in PostgreSQL; rows of the write in progress wait in memory."""

    SQL = Statements("%s")


# The history's reads, as the plan tests name them: each with an index that matches its filter and order.
VERSIONS_SQL = PostgresHistory.SQL.versions
VERSION_SQL = PostgresHistory.SQL.version
COUNT_SQL = PostgresHistory.SQL.count
audit_page_sql = PostgresHistory.SQL.audit_page
