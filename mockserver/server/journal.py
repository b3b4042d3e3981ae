"""The request journal: what the mock was asked and what it answered, in the spec's terms.

One journal serves the request log, the pytest plugin's assertions, the control API and the
inspector page. Recording is on every request's path, so an entry keeps references to what the
request already built (the header pairs, the body bytes, the answer's headers and bytes); masking
credentials, decoding and parsing happen only when the journal is read.

Two bounds, oldest entries first: each journal keeps its last 1,000 entries, and the journals of one
mock (its default state and every session) share a ``Budget`` of bytes (``--journal-mb``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    lower = name.lower()
    if lower not in SECRET_HEADERS and not (by_word and any(word in lower for word in SECRET_WORDS)):
        return value
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
            **self.extra,
        }

    @classmethod
    def from_dict(cls, listed: dict[str, Any]) -> Entry:
        """An entry back from ``as_dict`` (a journal read over HTTP); headers and the answer are not listed."""
        known = {"seq", "time", "method", "path", "query", "operation_id", "canonical_id", "status", "duration_ms"}
        known |= {"refused_by", "error", "param"}
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
        return [
            e
            for e in found
            if (operation_id is None or e.is_operation(operation_id))
            and (method is None or e.method == method.upper())
            and (status is None or e.status == status)
            and (refused is None or (e.refused_by in SPEC_CHECKS) == refused)
        ]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
