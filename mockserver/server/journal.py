"""The request journal: what the mock was asked and what it answered, in the spec's terms.

One journal serves the request log, the pytest plugin's assertions, the control API and the
inspector page. Recording is on every request's path, so an entry keeps references to what the
request already built (the header pairs, the body bytes, the answer's headers and bytes); masking
credentials, decoding and parsing happen only when the journal is read.

Two bounds, oldest entries first: each journal keeps its last 1,000 entries, and the journals of one
mock (its default state and every session) share a ``Budget`` of bytes (``--journal-mb``).

**A shared state** (``--state postgresql://...``, or ``--workers N``): every instance's requests are in
one journal, the database's (``storage.shared_log``), written only while someone reads it. Recording
stays what it is, an append to this process's journal in memory, within the same bounds. Reading a
``SharedJournal`` records the demand in the database (at most once every ``DEMAND_EVERY_S``); a
``Recorder`` thread in each process looks for a demand every ``FLUSH_S`` and, while one is younger than
``DEMAND_S``, writes every entry it has not written yet, oldest first, in batches (every ``FLUSH_S``, or
sooner once ``BATCH`` entries wait), then lets them go from memory. No request waits for the database;
a batch that cannot be written waits for the next try. A read that finds no recent demand (the first
after a quiet time) waits ``DEMAND_WAIT_S`` for the other instances to write theirs, then reads the
rows, which name the instance that answered each request. The bounds apply to the rows too: the last
1,000 of each session, and ``--journal-mb`` for all of them together. While nobody reads, the journal
costs the database one small query per process every ``FLUSH_S`` and no write at all.
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
# A shared journal's writer: while a reader's demand is younger than DEMAND_S, a batch every FLUSH_S seconds,
# or sooner once BATCH entries wait; without one, a look for one every FLUSH_S. The thread ends after IDLE_S
# seconds with nothing to write and starts again with the next entry.
FLUSH_S = 0.1
BATCH = 200
IDLE_S = 5.0
DEMAND_S = 30.0
DEMAND_EVERY_S = 1.0  # a reading process records its demand at most this often
# A read that finds no demand younger than DEMAND_S (less this margin: a writer may look just before it
# ends) waits DEMAND_WAIT_S, a few writers' looks, for the other instances to write what they hold.
DEMAND_MARGIN_S = 1.0
DEMAND_WAIT_S = 0.3
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


# Keys of a request's environ that never name one of its headers. granian copies the process's
# environment into every environ (35 keys on this project's machine); a set difference drops them in
# C, which costs a third of a loop over every key in Python.
_NOT_HEADERS = frozenset(key for key in os.environ if key[:5] != "HTTP_")


def environ_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's headers as WSGI keys and values, by key (named and masked when read)."""
    # A filtered copy, not the environ itself: that holds the request, and so its whole body.
    found = sorted((k, environ[k]) for k in environ.keys() - _NOT_HEADERS if k[:5] == "HTTP_")
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

    def written_through(self, seq: int) -> None:
        """Let go of the entries up to ``seq``, written to a shared journal (not counted as dropped)."""
        with self._lock:
            while self._entries and self._entries[0].seq <= seq:
                self._entries.popleft()
                self._stamps.popleft()
                self.budget.used -= self._bytes.popleft()

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
    return LogRow(session, instance, _row_time(entry.time), text.decode("utf-8"), len(text), time=entry.time)


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
    """Writes the entries the journals of one process keep in memory to the shared log while a reader
    asks for them, in batches, from a thread of its own; one per app (its default state and every session).

    The request path records in the session's journal in memory and counts the entry. The thread looks
    for a reader's demand every ``FLUSH_S`` (one query; a demand found is known for its remaining time
    without looking again); with one, it writes every entry not written yet, and the journals let go of
    those written. A batch that cannot be written (the database away) stays in memory for the next try,
    and one warning is logged until a batch is written again. The sessions a batch writes to keep their
    last ``size`` rows, in the batch's own transaction; every so often, all rows are cut to the byte
    budget (oldest first).
    """

    def __init__(self, shared: SharedLog, instance: str, budget: Budget, size: int = ENTRIES) -> None:
        self.log = shared
        self.instance = instance
        self.budget = budget  # its limit applies to the rows, and to the entries held in memory
        self.size = size
        self.dropped: Counter[str] = Counter()  # by session: rows this process cut to the bounds, or lost
        self.written = 0  # entries written
        self._journals: weakref.WeakSet[SharedJournal] = weakref.WeakSet()
        self._recorded = 0  # entries recorded since the last batch
        self._lock = threading.Lock()  # the journals, the counters and the thread
        self._writing = threading.Lock()  # one batch (or a clear) at a time, in the order taken
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failing = False  # a warning was logged; the next batch written says it is over
        self._demand_until = 0.0  # (monotonic) until when a reader's demand is known to last
        self._demanded_at = -math.inf  # (monotonic) when this process last recorded its own
        self._since_check = 0  # bytes written since the byte budget was last checked
        self._checked_at = clock.monotonic()
        self._used: tuple[float, int] | None = None  # (when, bytes) the rows last added up to
        self._horizon = 0  # see horizon()
        _RECORDERS.add(self)

    def join(self, journal: SharedJournal) -> None:
        with self._lock:
            self._journals.add(journal)

    def leave(self, journal: SharedJournal) -> None:
        with self._lock:
            self._journals.discard(journal)

    # -- the request path --------------------------------------------------------------------------

    def recorded(self) -> None:
        """An entry was recorded in one of the journals: the writer runs, and hurries with a demand."""
        with self._lock:
            self._recorded += 1
            waiting = self._recorded
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="mockserver-journal", daemon=True)
                self._thread.start()
        # Set once: each set takes the event's lock and notifies.
        if waiting >= BATCH and not self._wake.is_set() and clock.monotonic() < self._demand_until:
            self._wake.set()

    # -- demand --------------------------------------------------------------------------------------

    def demanded(self) -> bool:
        """Whether a reader read the journal within ``DEMAND_S`` (the database away: no)."""
        now = clock.monotonic()
        if now < self._demand_until:
            return True
        try:
            age = self.log.demand_age()
        except StoreUnavailable:
            return False
        if age is None or age >= DEMAND_S:
            return False
        self._demand_until = now + DEMAND_S - age
        return True

    def read(self) -> None:
        """A journal of this process is about to be read: record the demand (at most once every
        ``DEMAND_EVERY_S``), write this process's entries, and, when no reader had asked lately, give the
        other instances ``DEMAND_WAIT_S`` to write theirs. Raises ``StoreUnavailable`` (the read fails)."""
        now = clock.monotonic()
        quiet = False
        if now - self._demanded_at >= DEMAND_EVERY_S:
            age = self.log.demand()
            self._demanded_at, self._demand_until = now, now + DEMAND_S
            quiet = age is None or age >= DEMAND_S - DEMAND_MARGIN_S
        self.flush()
        if quiet:
            rest = DEMAND_WAIT_S - (clock.monotonic() - now)
            if rest > 0:
                clock.sleep(rest)

    # -- the writer --------------------------------------------------------------------------------

    def _holding(self) -> bool:
        """Whether a journal holds entries not written yet."""
        with self._lock:
            journals = list(self._journals)
        return any(len(journal.kept) for journal in journals)

    def _run(self) -> None:
        idle_since = clock.monotonic()
        while True:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            holding = True
            try:
                holding = self._holding()
                if holding and self.demanded() and self.flush():
                    idle_since = clock.monotonic()
                    holding = self._holding()
            except Exception:  # a defect: the thread must outlive it, or nothing would be written again
                log.exception("the shared journal's writer failed")
            if not holding and clock.monotonic() - idle_since >= IDLE_S or self._stopping:
                with self._lock:
                    self._thread = None  # the next entry starts a new thread
                    return

    def flush(self) -> int:
        """Write every entry the journals hold now, whatever the demand; how many were written."""
        with self._writing:
            with self._lock:
                journals = list(self._journals)
                self._recorded = 0
            waiting = [(journal, entry) for journal in journals for entry in journal.kept.entries()]
            done = 0
            for start in range(0, len(waiting), BATCH):
                written = self._write(waiting[start : start + BATCH])
                if written is None:
                    break
                done += written
            if done:
                self._keep_to_budget()
            return done

    def _write(self, batch: list[tuple[SharedJournal, Entry]]) -> int | None:
        """One batch in one transaction (``_writing`` held); None when the database is away (the batch
        stays for the next try)."""
        try:
            rows = [entry_row(entry, journal.session, self.instance) for journal, entry in batch]
            # The sessions written to keep their last `size` rows, in the batch's own transaction.
            cut = self.log.append(rows, keep=self.size)
        except StoreUnavailable as exc:
            if not self._failing:
                self._failing = True
                log.warning("the shared journal cannot be written (the entries wait): %s", exc.message)
            return None
        except Exception:  # a defect: said once per batch, and the writer goes on with the next one
            log.exception("the shared journal dropped %d entries", len(batch))
            self._let_go(batch, lost=True)
            return 0
        if self._failing:
            self._failing = False
            log.warning("the shared journal is written again")
        self._let_go(batch)
        with self._lock:
            self.written += len(rows)
            self.dropped.update(cut)
        self._since_check += sum(row.size for row in rows)
        return len(rows)

    def _let_go(self, batch: list[tuple[SharedJournal, Entry]], lost: bool = False) -> None:
        """The journals let go of a batch's entries (written, or lost and counted)."""
        newest: dict[int, tuple[SharedJournal, int]] = {}
        for journal, entry in batch:
            newest[id(journal)] = (journal, entry.seq)
            if lost:
                with self._lock:
                    self.dropped[journal.session] += 1
        for journal, seq in newest.values():
            journal.kept.written_through(seq)

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

    def clear(self, session: str, before: float) -> None:
        """Delete the session's rows, and the rows of requests made before ``before`` that any instance
        writes later; not while a batch is being written."""
        with self._writing:
            with self._lock:
                self.dropped.pop(session, None)
            self.log.clear(session, before)

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
        """Write what waits if a reader asks for it, stop the thread and close the log's connections (an
        app let go)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)
        if self.demanded():
            self.flush()
        self.log.close()


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _write_the_rest() -> None:
    """A process that ends on its own (a worker stopped with its server) writes what it holds, if a reader
    asks for it."""
    for recorder in list(_RECORDERS):
        try:
            if recorder.demanded():
                recorder.flush()
        except Exception:  # noqa: BLE001 - the process is ending: nothing is left to tell
            pass


class SharedJournal(Journal):
    """One session's journal in a shared state: recorded in memory (``kept``, until the ``Recorder`` writes
    the entries), read from the shared rows (every instance's entries, each naming its instance)."""

    def __init__(self, recorder: Recorder, session: str | None) -> None:
        # The entries are kept in ``kept``, a journal of this process's: Journal.__init__ is not called.
        self.recorder = recorder
        self.session = session or ""
        self.size = recorder.size
        self.budget = recorder.budget
        self.kept = Journal(recorder.size, recorder.budget)  # entries not written yet, within the same bounds
        recorder.join(self)

    @property
    def dropped(self) -> int:
        """Entries of this session that this process dropped before they were written (the bounds, while
        nobody read) or cut from the rows to the bounds."""
        return self.recorder.dropped[self.session] + self.kept.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self.recorder.dropped[self.session] = value
        self.kept.dropped = 0

    def record(self, entry: Entry) -> None:
        self.kept.record(entry)
        self.recorder.recorded()

    def _fresh(self) -> SharedLog:
        """The log, once the entries of this process (and, after a quiet time, of the others) are in it."""
        self.recorder.read()
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
        """Every instance's entries of the session go: the rows, this process's entries in memory, and those
        the other instances still hold (by the clock: made before now)."""
        now = clock.time()
        self.kept.clear()
        self.recorder.clear(self.session, now)

    def close(self) -> None:
        """The session was deleted: its rows go too, its violations' as well (they share the log, and a
        session made again under the name starts without them); an instance that drops it later finds none,
        and writes none of the entries it still holds."""
        self.recorder.leave(self)
        self.kept.close()
        try:
            self.clear()
            self.recorder.log.clear_violations(self.session)
        except StoreUnavailable as exc:
            log.warning("the shared journal of session %r was not cleared: %s", self.session, exc.message)

    def let_go(self) -> None:
        """Another process deleted the session (and its rows): only this process's entries in memory go.
        Deleting rows here could delete those of a session made again under the name meanwhile."""
        self.recorder.leave(self)
        self.kept.close()
        with self.recorder._lock:
            self.recorder.dropped.pop(self.session, None)

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
