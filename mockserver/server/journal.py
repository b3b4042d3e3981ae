"""The request journal: what the mock was asked and what it answered, in the spec's terms.

One journal serves the request log, the pytest plugin's assertions, the control API and the
inspector page. Recording is on every request's path, so an entry keeps references to what the
request already built (the header pairs, the body bytes, the answer's headers and bytes); masking
credentials, decoding and parsing happen only when the journal is read.
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
MASK = "****"
# Request headers whose values are credentials, by lower-case name; any name holding one of the words too.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
SECRET_WORDS = ("token", "secret", "password", "api-key", "apikey", "session", "auth", "credential")


def keep(data: bytes) -> bytes:
    """What the journal keeps of a body: all of it up to ``BODY_CAP`` bytes (no copy), else its start."""
    return data if len(data) <= BODY_CAP else data[:BODY_CAP]


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
    """The last ``size`` entries, oldest first; safe to use from several threads."""

    def __init__(self, size: int = 1000) -> None:
        self._entries: deque[Entry] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._last = 0  # seq of the newest entry ever recorded; clearing does not start it again

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._last += 1
            entry.seq = self._last
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

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
