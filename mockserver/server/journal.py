"""The request journal: what the mock was asked and what it answered, in the spec's terms.

One journal serves the request log, the pytest plugin's assertions and the control API.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Which check refused a request. None: the operation ran (whatever status it answered).
REFUSED_ROUTE = "route"  # unknown path, or a method the path does not define
REFUSED_AUTH = "auth"  # 401 or 403
REFUSED_CONTRACT = "contract"  # the request breaks the spec: 400, 413, 415 before the operation ran
REFUSED_SESSION = "session"  # the session it names cannot be used: a bad name, the bound, expired (400, 404, 410, 429)


@dataclass(frozen=True)
class Entry:
    """One request and its answer."""

    method: str
    path: str
    query: dict[str, list[str]]
    operation_id: str | None
    canonical_id: str | None
    status: int
    duration_ms: float
    body: Any = None  # the request's JSON body, if it had one that parsed
    refused_by: str | None = None
    error: str | None = None  # the answer's error message, for refused requests
    extra: dict[str, Any] = field(default_factory=dict)

    def is_operation(self, operation_id: str) -> bool:
        """Whether this is a call of ``operation_id``, by its own id or its canonical one."""
        return operation_id in (self.operation_id, self.canonical_id)

    def as_dict(self) -> dict[str, Any]:
        return {
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

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(
        self,
        operation_id: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        refused: bool | None = None,
    ) -> list[Entry]:
        """Entries matching every filter given (``operation_id`` matches canonical or deprecated ids)."""
        with self._lock:
            found = list(self._entries)
        return [
            e
            for e in found
            if (operation_id is None or e.is_operation(operation_id))
            and (method is None or e.method == method.upper())
            and (status is None or e.status == status)
            and (refused is None or (e.refused_by is not None) == refused)
        ]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
