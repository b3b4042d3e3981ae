"""The request journal: what the mock was asked and what it answered, in the spec's terms.

One journal serves the request log, the pytest plugin's assertions, the control API and the
inspector page. Recording is on every request's path, so an entry keeps references to what the
request already built (the header pairs, the body bytes, the answer's headers and bytes); masking
credentials, decoding and parsing happen only when the journal is read.

Two bounds, oldest entries first: each journal keeps its last 1,000 entries, and the journals of one
mock (its default state and every session) share a ``Budget`` of bytes (``--journal-mb``).

**A shared state** (``--state postgresql://...``, or ``--workers N``): every instance's requests are in
one journal, the database's (``storage.shared_log``). Recording stays what it is, an append in memory:
a ``Recorder`` thread writes what was recorded in batches (every ``FLUSH_S``, or sooner once
``BATCH`` entries wait), so no request waits for the database, and a batch that cannot be written is
dropped and counted, never failing a request. Reading a ``SharedJournal`` first writes this process's
waiting entries, then reads the rows, which name the instance that answered each request. The bounds
apply to the rows: the last 1,000 of each session, and ``--journal-mb`` for all of them together.
A journal that is not shared does none of this: its request path is the one above.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import math
import os
import socket
import threading
import time as clock
import weakref
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mockserver.settings import Settings
from mockserver.spec import jsontext
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage.shared_log import LogRow, SharedLog

# Which check refused a request. None: the operation answered as it wanted (a success, or an answer
# chosen with Prefer).
REFUSED_ROUTE = "route"  # unknown path, or a method the path does not define
REFUSED_AUTH = "auth"  # 401 or 403
REFUSED_CONTRACT = "contract"  # the request breaks the spec: 400, 413, 415 before the operation ran
REFUSED_SESSION = "session"  # the session it names cannot be used: a bad name, the bound, expired (400, 404, 410, 429)
REFUSED_RULE = "rule"  # the operation refused it: not found, a business rule, a name conflict
# The refusals of a request the spec does not allow (a rule refusal is a documented answer to an allowed one).
SPEC_CHECKS = frozenset({REFUSED_ROUTE, REFUSED_AUTH, REFUSED_CONTRACT})

BODY_CAP = 64 * 1024  # bytes kept of each request and answer body; the rest is cut, and the entry says so
ENTRIES = 1000  # entries each journal keeps
BUDGET_MB = 64  # the default byte budget of a mock's journals, all sessions together (--journal-mb)
# What an entry costs besides its bodies and header text: the entry, its lists, tuples, strings and query.
# With it, a GET one's entry counts 3.07 kB where tracemalloc sees 3.28 kB per request once the journal is full.
ENTRY_OVERHEAD = 1000
MASK = "****"
# Request headers whose values are credentials, by lower-case name; any name holding one of the words too.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
SECRET_WORDS = ("token", "secret", "password", "api-key", "apikey", "session", "auth", "credential")
# A shared journal's writer: a batch every FLUSH_S seconds, or sooner once BATCH entries wait; at most
# PENDING wait (the oldest go, counted, while the database is away); the thread ends after IDLE_S
# seconds with nothing to write and starts again with the next entry.
FLUSH_S = 0.1
BATCH = 200
PENDING = 10_000
IDLE_S = 5.0
# The byte budget of the shared rows is checked (a scan of the table) after each ``1/BUDGET_CHECKS`` of
# it written by this process, or BUDGET_CHECK_S seconds after the last check, whichever comes first.
BUDGET_CHECKS = 32
BUDGET_CHECK_S = 5.0
USED_CACHE_S = 1.0  # how long the bytes the shared rows use, as a listing shows them, are reused

log = logging.getLogger("mockserver")


def keep(data: bytes) -> bytes:
    """What the journal keeps of a body: all of it up to ``BODY_CAP`` bytes, else its start.

    Always a copy of exactly that size: orjson's answers keep the spare capacity of the buffer they were
    written in (an answer of 2 kB held 8 kB), so a reference would cost several times what the byte
    budget counts. The copy costs microseconds.
    """
    return bytes(memoryview(data)[:BODY_CAP])


def environ_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's headers as WSGI keys and values (named and masked when read)."""
    # A filtered copy, not the environ itself: that holds the request, and so its whole body.
    found = [(k, v) for k, v in environ.items() if k[:5] == "HTTP_"]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found.append((key, environ[key]))
    return found


def header_name(key: str) -> str:
    """``HTTP_X_API_KEY`` -> ``X-Api-Key``."""
    return (key[5:] if key.startswith("HTTP_") else key).replace("_", "-").title()


def masked(name: str, value: str, by_word: bool = True) -> str:
    """A header's value as the journal shows it: credentials replaced, an auth scheme kept.

    ``by_word``: also mask names that merely hold a word such as "token" (request headers; an answer's
    ``WWW-Authenticate`` is no secret).
    """
    return _mask(name.lower(), value) if is_secret(name, by_word) else value


def is_secret(name: str, by_word: bool = True) -> bool:
    """Whether ``masked`` replaces the value of a header of this name."""
    lower = name.lower()
    return lower in SECRET_HEADERS or (by_word and any(word in lower for word in SECRET_WORDS))


def _mask(lower: str, value: str) -> str:
    scheme, space, _ = value.strip().partition(" ")
    return f"{scheme} {MASK}" if space and lower.endswith("authorization") else MASK


def _body_view(data: bytes, size: int) -> dict[str, Any]:
    return {"text": data.decode("utf-8", "replace"), "bytes": size, "cut": size > len(data)}


def entry_bytes(entry: Entry) -> int:
    """About what an entry keeps in memory: its bodies, its header text and a fixed overhead."""
    headers = sum(len(k) + len(v) for k, v in entry.request_headers)
    headers += sum(len(k) + len(v) for k, v in entry.answer_headers)
    return len(entry.request_body) + len(entry.answer_body) + headers + ENTRY_OVERHEAD


class Budget:
    """The bytes the journals of one mock may keep together; when a new entry passes it, the oldest
    entries of all those journals go first."""

    def __init__(self, limit_bytes: int = BUDGET_MB * 1024 * 1024) -> None:
        self.limit = limit_bytes
        self.used = 0
        self.lock = threading.Lock()  # also held by a journal's own changes, so the two never disagree
        self._clock = 0  # orders entries across journals
        self._journals: dict[int, Journal] = {}

    def stamp(self) -> int:
        self._clock += 1
        return self._clock

    def join(self, journal: Journal) -> None:
        with self.lock:
            self._journals[id(journal)] = journal

    def leave(self, journal: Journal) -> None:
        """A journal let go (its session deleted): its bytes are free again."""
        with self.lock:
            if self._journals.pop(id(journal), None) is not None:
                journal._drop_all()

    def make_room(self) -> None:
        """Drop the oldest entries of all journals until the bytes kept fit (``lock`` held)."""
        while self.used > self.limit:
            oldest = min((j for j in self._journals.values() if j._entries), key=lambda j: j._stamps[0], default=None)
            if oldest is None:
                return
            oldest._drop_oldest()


@dataclass(slots=True)
class Entry:
    """One request and its answer. ``seq`` is given by the journal: 1, 2, 3... in the order recorded."""

    method: str
    path: str
    query: dict[str, list[str]]
    operation_id: str | None
    canonical_id: str | None
    status: int
    duration_ms: float
    refused_by: str | None = None
    error: str | None = None  # the answer's error message, for refused requests
    param: str | None = None  # the field the refusal names (the answer's error.param)
    time: float = 0.0  # when the request arrived, seconds since the epoch
    request_headers: list[tuple[str, str]] = field(default_factory=list)  # WSGI keys, as environ_headers gives
    request_body: bytes = b""  # as kept (see keep)
    request_size: int = 0  # bytes sent
    answer_headers: Iterable[tuple[str, str]] = ()
    answer_body: bytes = b""
    answer_size: int = 0
    seq: int = 0
    instance: str | None = None  # the instance that answered it, in a shared state's journal
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> Any:
        """The request's JSON body, if it had one that parsed and was kept whole."""
        if not self.request_body or self.request_size > len(self.request_body):
            return None
        try:
            return json.loads(self.request_body)
        except (ValueError, RecursionError):
            return None

    def is_operation(self, operation_id: str) -> bool:
        """Whether this is a call of ``operation_id``, by its own id or its canonical one."""
        return operation_id in (self.operation_id, self.canonical_id)

    def as_dict(self) -> dict[str, Any]:
        """The entry as a journal listing shows it (``details`` adds headers and both bodies)."""
        return {
            "seq": self.seq,
            "time": round(self.time, 3),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "operation_id": self.operation_id,
            "canonical_id": self.canonical_id,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "body": self.body,
            "refused_by": self.refused_by,
            "error": self.error,
            "param": self.param,
            "instance": self.instance,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, listed: dict[str, Any]) -> Entry:
        """An entry back from ``as_dict`` (a journal read over HTTP); headers and the answer are not listed."""
        known = {"seq", "time", "method", "path", "query", "operation_id", "canonical_id", "status", "duration_ms"}
        known |= {"refused_by", "error", "param", "instance"}
        body = listed.get("body")
        sent = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        return cls(
            **{k: v for k, v in listed.items() if k in known},
            request_body=sent,
            request_size=len(sent),
            extra={k: v for k, v in listed.items() if k not in known and k != "body"},
        )

    def details(self) -> dict[str, Any]:
        """Everything kept: the request (headers masked) and the answer, bodies as text."""
        summary = self.as_dict()
        del summary["body"]
        return {
            **summary,
            "request": {
                "query": self.query,
                "headers": [[header_name(k), masked(header_name(k), v)] for k, v in self.request_headers],
                "body": _body_view(self.request_body, self.request_size),
            },
            "answer": {
                "status": self.status,
                "headers": [[k, masked(k, v, by_word=False)] for k, v in self.answer_headers],
                "body": _body_view(self.answer_body, self.answer_size),
            },
        }

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, values in self.query.items() for v in values)
        where = self.path + (f"?{query}" if query else "")
        what = f" refused by the {self.refused_by} check: {self.error}" if self.refused_by else ""
        return f"{self.method} {where} ({self.operation_id or 'no operation'}) -> {self.status}{what}"


class Journal:
    """The last ``size`` entries, oldest first, within the bytes its ``budget`` leaves (a budget of
    its own unless one is shared); safe to use from several threads."""

    def __init__(self, size: int = ENTRIES, budget: Budget | None = None) -> None:
        self.size = size
        self.budget = budget if budget is not None else Budget()
        self._entries: deque[Entry] = deque()
        self._stamps: deque[int] = deque()  # the budget's stamp of each entry kept
        self._bytes: deque[int] = deque()  # and what it counts for
        self._lock = self.budget.lock  # one lock: the budget drops entries of any of its journals
        self._last = 0  # seq of the newest entry ever recorded; clearing does not start it again
        self.dropped = 0  # entries dropped to stay within the bounds (not those cleared)
        self.budget.join(self)

    def record(self, entry: Entry) -> None:
        size = entry_bytes(entry)
        with self._lock:
            self._last += 1
            entry.seq = self._last
            self._entries.append(entry)
            self._stamps.append(self.budget.stamp())
            self._bytes.append(size)
            self.budget.used += size
            if len(self._entries) > self.size:
                self._drop_oldest()
            self.budget.make_room()

    def _drop_oldest(self) -> None:
        self._entries.popleft()
        self._stamps.popleft()
        self.budget.used -= self._bytes.popleft()
        self.dropped += 1

    def _drop_all(self) -> None:
        self._entries.clear()
        self._stamps.clear()
        self.budget.used -= sum(self._bytes)
        self._bytes.clear()

    def clear(self) -> None:
        with self._lock:
            self._drop_all()
            self.dropped = 0

    def close(self) -> None:
        """Let go of every entry and of the budget's share (a deleted session's journal)."""
        self.budget.leave(self)

    def let_go(self) -> None:
        """This process stops holding the session, which another process deleted: as ``close`` here."""
        self.close()

    def window(self) -> tuple[int, int]:
        """(seq of the oldest entry kept, seq of the newest recorded); oldest is newest + 1 when empty."""
        with self._lock:
            return (self._entries[0].seq if self._entries else self._last + 1), self._last

    def get(self, seq: int) -> Entry | None:
        """The entry numbered ``seq``, while the journal still keeps it."""
        with self._lock:
            if not self._entries:
                return None
            # Seqs in the deque are consecutive: each record adds one, and only the oldest drop out.
            index = seq - self._entries[0].seq
            return self._entries[index] if 0 <= index < len(self._entries) else None

    def entries(
        self,
        operation_id: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        refused: bool | None = None,
        after: int | None = None,
    ) -> list[Entry]:
        """Entries matching every filter given, oldest first.

        ``operation_id`` matches canonical or deprecated ids; ``refused`` is about the spec's checks
        (route, auth, contract): whether the spec allows the request, whatever the operation answered;
        ``after`` keeps entries whose seq is greater.
        """
        with self._lock:
            if after is None:
                found = list(self._entries)
            else:
                found = []
                for entry in reversed(self._entries):  # the newest are at the end: stop at the first old one
                    if entry.seq <= after:
                        break
                    found.append(entry)
                found.reverse()
        return _filtered(found, operation_id, method, status, refused)

    def listing(
        self,
        operation_id: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        after: int | None = None,
    ) -> Listing:
        """What ``GET /__mock/journal`` answers: the entries ``entries`` gives, and the window around them."""
        oldest, last = self.window()
        return Listing(self.entries(operation_id, method=method, status=status, after=after), oldest, last)

    def bounds(self) -> dict[str, int]:
        """The bounds the journal keeps within, and the bytes all journals of this mock use."""
        return {"entries": self.size, "bytes": self.budget.limit, "bytes_used": self.budget.used}

    def sibling(self, session: str | None) -> Journal:
        """A new journal for another session of the same mock (sharing this one's byte budget)."""
        return Journal(self.size, self.budget)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass(frozen=True, slots=True)
class Listing:
    """Entries as a reader polling with ``after`` gets them: ``oldest`` is the seq of the oldest entry
    kept (drop what you hold below it); ``last`` is where to move the cursor: no entry at or below it
    will appear later."""

    entries: list[Entry]
    oldest: int
    last: int


def instance_name(settings: Settings) -> str:
    """This process's name in a shared journal: ``--instance``, or host name and process id."""
    return settings.instance or f"{socket.gethostname()}:{os.getpid()}"


# -- a shared state's journal --------------------------------------------------------------------------


def _stored_body(data: bytes) -> str | dict[str, str]:
    """A body as a row keeps it: its text, or base64 when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _body_bytes(kept: str | dict[str, str]) -> bytes:
    return base64.b64decode(kept["base64"]) if isinstance(kept, dict) else kept.encode("utf-8")


# Whether a row masks a header's value, by the key its entry holds it under and whether it is a request's:
# the same few names come with every request, and a batch's entries are turned into rows one by one.
# Clients choose the names, so the cache starts again when it holds _SECRET_KEYS_MAX of them.
_SECRET_KEYS: dict[tuple[str, bool], bool] = {}
_SECRET_KEYS_MAX = 4096


def _row_headers(headers: Iterable[tuple[str, str]], request: bool) -> list[list[str]]:
    """Headers as a row keeps them: ``masked`` (a request's by its WSGI key, as ``details`` names it)."""
    found = []
    for key, value in headers:
        secret = _SECRET_KEYS.get((key, request))
        if secret is None:
            if len(_SECRET_KEYS) >= _SECRET_KEYS_MAX:
                _SECRET_KEYS.clear()
            secret = is_secret(header_name(key) if request else key, by_word=request)
            _SECRET_KEYS[key, request] = secret
        # header_name only changes "_" to "-" and the case: its lower-case end is the key's.
        found.append([key, _mask(key.lower(), value) if secret else value])
    return found


_second: tuple[int, str] = (-1, "")  # the last whole second _row_time formatted, and its text


def _row_time(instant: float) -> str:
    """A row's ``at``, as ``format_timestamp`` writes it (RFC 3339 in UTC, microseconds only when there are
    some); the date and time of a second are formatted once, not for each of its entries."""
    global _second
    fraction, whole = math.modf(instant)  # rounded as datetime.fromtimestamp rounds
    second, micro = divmod(int(whole) * 1_000_000 + round(fraction * 1_000_000), 1_000_000)
    known, text = _second
    if second != known:
        text = clock.strftime("%Y-%m-%dT%H:%M:%S", clock.gmtime(second))
        _second = (second, text)
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


def entry_row(entry: Entry, session: str, instance: str) -> LogRow:
    """An entry as a shared journal's row: everything ``details`` shows, credentials masked before they
    leave the process."""
    data = {
        "time": entry.time,
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "operation_id": entry.operation_id,
        "canonical_id": entry.canonical_id,
        "status": entry.status,
        "duration_ms": entry.duration_ms,
        "refused_by": entry.refused_by,
        "error": entry.error,
        "param": entry.param,
        "request_headers": _row_headers(entry.request_headers, request=True),
        "request_body": _stored_body(entry.request_body),
        "request_size": entry.request_size,
        "answer_headers": _row_headers(entry.answer_headers, request=False),
        "answer_body": _stored_body(entry.answer_body),
        "answer_size": entry.answer_size,
        "extra": entry.extra,
    }
    try:
        text = jsontext.dumps(data)
    except (UnicodeError, ValueError, TypeError):  # a path or header no encoder takes whole: replaced, not lost
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8", "replace")
    return LogRow(session, instance, _row_time(entry.time), text.decode("utf-8"), len(text))


def row_entry(row: LogRow) -> Entry:
    """A shared journal's row as an entry again (numbered by the database)."""
    data = json.loads(row.data)
    return Entry(
        method=data["method"],
        path=data["path"],
        query=data["query"],
        operation_id=data["operation_id"],
        canonical_id=data["canonical_id"],
        status=data["status"],
        duration_ms=data["duration_ms"],
        refused_by=data["refused_by"],
        error=data["error"],
        param=data["param"],
        time=data["time"],
        request_headers=[(k, v) for k, v in data["request_headers"]],
        request_body=_body_bytes(data["request_body"]),
        request_size=data["request_size"],
        answer_headers=[(k, v) for k, v in data["answer_headers"]],
        answer_body=_body_bytes(data["answer_body"]),
        answer_size=data["answer_size"],
        seq=row.seq,
        instance=row.instance,
        extra=data["extra"],
    )


class Recorder:
    """Writes the entries every journal of one process records to the shared log, in batches, from a
    thread of its own; one per app (its default state and every session).

    The request path only appends to ``_pending`` under a lock. A batch that cannot be written (the
    database away) is dropped: its entries count as dropped in their sessions' journals, and one
    warning is logged until a batch is written again. The sessions a batch writes to keep their last
    ``size`` rows, in the batch's own transaction; every so often, all rows are cut to the byte budget
    (oldest first).
    """

    def __init__(self, shared: SharedLog, instance: str, budget: Budget, size: int = ENTRIES) -> None:
        self.log = shared
        self.instance = instance
        self.budget = budget  # its limit applies to the rows; nothing is kept in memory against it
        self.size = size
        self.dropped: Counter[str] = Counter()  # by session: entries this process dropped or cut
        self.written = 0  # entries written
        self._pending: deque[tuple[str, Entry]] = deque()
        self._lock = threading.Lock()  # _pending, the counters and the thread
        self._writing = threading.Lock()  # one batch (or a clear) at a time, in the order taken
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failing = False  # a warning was logged; the next batch written says it is over
        self._since_check = 0  # bytes written since the byte budget was last checked
        self._checked_at = clock.monotonic()
        self._used: tuple[float, int] | None = None  # (when, bytes) the rows last added up to
        self._horizon = 0  # see horizon()
        _RECORDERS.add(self)

    # -- the request path --------------------------------------------------------------------------

    def put(self, session: str, entry: Entry) -> None:
        with self._lock:
            if len(self._pending) >= PENDING:
                gone, _ = self._pending.popleft()
                self.dropped[gone] += 1
            self._pending.append((session, entry))
            waiting = len(self._pending)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="mockserver-journal", daemon=True)
                self._thread.start()
        if waiting >= BATCH and not self._wake.is_set():  # set once: each set takes the event's lock and notifies
            self._wake.set()

    # -- the writer --------------------------------------------------------------------------------

    def _run(self) -> None:
        idle_since = clock.monotonic()
        while True:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            try:
                if self.flush():
                    idle_since = clock.monotonic()
            except Exception:  # a defect: the thread must outlive it, or nothing would be written again
                log.exception("the shared journal's writer failed")
            with self._lock:
                idle = not self._pending and clock.monotonic() - idle_since >= IDLE_S
                if self._stopping or idle:
                    self._thread = None  # the next entry starts a new thread
                    return

    def flush(self) -> int:
        """Write every entry waiting now; how many were written (0 also when the batch was dropped)."""
        with self._writing:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            if not batch:
                return 0
            try:
                rows = [entry_row(entry, session, self.instance) for session, entry in batch]
                # The sessions written to keep their last `size` rows, in the batch's own transaction.
                cut = self.log.append(rows, keep=self.size)
            except StoreUnavailable as exc:
                self._lost(batch)
                if not self._failing:
                    self._failing = True
                    log.warning("the shared journal dropped %d entries: %s", len(batch), exc.message)
                return 0
            except Exception:  # a defect: said once per batch, and the writer goes on with the next one
                self._lost(batch)
                log.exception("the shared journal dropped %d entries", len(batch))
                return 0
            if self._failing:
                self._failing = False
                log.warning("the shared journal is written again")
            with self._lock:
                self.written += len(rows)
                self.dropped.update(cut)
            self._since_check += sum(row.size for row in rows)
            self._keep_to_budget()
            return len(rows)

    def _keep_to_budget(self) -> None:
        """Cut all rows to the byte budget when it is time to look (``_writing`` held); a cut that fails
        waits for the next batch."""
        now = clock.monotonic()
        if self._since_check * BUDGET_CHECKS < self.budget.limit and now - self._checked_at < BUDGET_CHECK_S:
            return
        self._since_check, self._checked_at = 0, now
        try:
            cut = self.log.keep_bytes(self.budget.limit)
        except StoreUnavailable:
            return
        if cut:
            with self._lock:
                self.dropped.update(cut)

    def _lost(self, batch: list[tuple[str, Entry]]) -> None:
        with self._lock:
            self.dropped.update(session for session, _ in batch)

    def clear(self, session: str) -> None:
        """Delete the session's rows, and its entries still waiting; not while a batch is being written
        (one holding entries of the session would put them back after the clear)."""
        with self._writing:
            self.forget(session)
            self.log.clear(session)

    def forget(self, session: str) -> None:
        """Drop the session's entries still waiting, and what was counted as dropped of it."""
        with self._lock:
            self._pending = deque(item for item in self._pending if item[0] != session)
            self.dropped.pop(session, None)

    def horizon(self, last: int) -> int:
        """The newest ``last`` a window has shown this process: a clear of the newest rows lowers what
        the rows say, but no row at or below a seq once shown can appear later, so a reader's cursor
        never has to move back."""
        with self._lock:
            self._horizon = max(self._horizon, last)
            return self._horizon

    def used_bytes(self) -> int:
        """What every row of the shared journal adds up to, read at most once every ``USED_CACHE_S``."""
        now = clock.monotonic()
        if self._used is None or now - self._used[0] >= USED_CACHE_S:
            self._used = (now, self.log.used_bytes())
        return self._used[1]

    def close(self) -> None:
        """Write what waits, stop the thread and close the log's connections (an app let go)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)
        self.flush()
        self.log.close()


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _write_the_rest() -> None:
    """A process that ends on its own (a worker stopped with its server) writes what still waits."""
    for recorder in list(_RECORDERS):
        try:
            recorder.flush()
        except Exception:  # noqa: BLE001 - the process is ending: nothing is left to tell
            pass


class SharedJournal(Journal):
    """One session's journal in a shared state: recorded through the process's ``Recorder``, read from
    the shared rows (every instance's entries, each naming its instance)."""

    def __init__(self, recorder: Recorder, session: str | None) -> None:
        # Nothing kept in memory, so no share of the budget is joined: Journal.__init__ is not called.
        self.recorder = recorder
        self.session = session or ""
        self.size = recorder.size
        self.budget = recorder.budget

    @property
    def dropped(self) -> int:
        """Entries of this session that this process dropped (the database away) or cut to the bounds."""
        return self.recorder.dropped[self.session]

    @dropped.setter
    def dropped(self, value: int) -> None:
        self.recorder.dropped[self.session] = value

    def record(self, entry: Entry) -> None:
        self.recorder.put(self.session, entry)

    def _fresh(self) -> SharedLog:
        """The log, once this process's waiting entries are in it: a client reads its own requests."""
        self.recorder.flush()
        return self.recorder.log

    def listing(
        self,
        operation_id: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        after: int | None = None,
    ) -> Listing:
        shared = self._fresh()
        # The window first: every row at or below its `last` is visible by now (shared_log's docstring),
        # so the rows read next hold all of them above `after`.
        window = shared.window(self.session)
        oldest, last = window.oldest, self.recorder.horizon(window.last)
        if after is None:
            rows = shared.newest(self.session, self.size)
            if len(rows) == self.size:  # more rows than the bound, until the next batch's prune cuts them
                oldest = rows[0].seq
        else:
            rows = shared.after(self.session, after, self.size)
            if len(rows) == self.size:  # the rest next time: the cursor stops at the last row given
                last = min(last, rows[-1].seq)
        if rows:
            last = max(last, rows[-1].seq)
        found = _filtered([row_entry(row) for row in rows], operation_id, method, status, None)
        # Time order: each instance writes its entries in batches, so the database's order mixes
        # instances by up to a batch; the seqs stay what a reader polls with.
        found.sort(key=lambda e: (e.time, e.seq))
        return Listing(found, oldest, last)

    def entries(
        self,
        operation_id: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        refused: bool | None = None,
        after: int | None = None,
    ) -> list[Entry]:
        found = self.listing(operation_id, method=method, status=status, after=after).entries
        return _filtered(found, None, None, None, refused)

    def window(self) -> tuple[int, int]:
        window = self._fresh().window(self.session)
        return window.oldest, self.recorder.horizon(window.last)

    def get(self, seq: int) -> Entry | None:
        row = self._fresh().row(self.session, seq)
        return row_entry(row) if row is not None else None

    def bounds(self) -> dict[str, int]:
        return {"entries": self.size, "bytes": self.budget.limit, "bytes_used": self.recorder.used_bytes()}

    def clear(self) -> None:
        self.recorder.clear(self.session)

    def close(self) -> None:
        """The session was deleted: its rows go too, its violations' as well (they share the log, and a
        session made again under the name starts without them); an instance that drops it later finds none."""
        try:
            self.clear()
            self.recorder.log.clear_violations(self.session)
        except StoreUnavailable as exc:
            log.warning("the shared journal of session %r was not cleared: %s", self.session, exc.message)

    def let_go(self) -> None:
        """Another process deleted the session (and its rows): only this process's waiting entries go.
        Deleting rows here could delete those of a session made again under the name meanwhile."""
        self.recorder.forget(self.session)

    def sibling(self, session: str | None) -> Journal:
        return SharedJournal(self.recorder, session)

    def __len__(self) -> int:
        return self._fresh().count(self.session)


def _filtered(
    found: list[Entry], operation_id: str | None, method: str | None, status: int | None, refused: bool | None
) -> list[Entry]:
    return [
        e
        for e in found
        if (operation_id is None or e.is_operation(operation_id))
        and (method is None or e.method == method.upper())
        and (status is None or e.status == status)
        and (refused is None or (e.refused_by in SPEC_CHECKS) == refused)
    ]
