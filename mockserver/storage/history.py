"""Versions and audit rows read from a database: one class for both engines.

The SQLite file and PostgreSQL keep history in the same tables with the same indexes, and read it
with the same queries; only the parameter marker differs (``?`` and ``%s``). ``Statements`` writes the
queries for a marker, and ``DatabaseHistory`` is the ``HistoryLog`` over an engine's ``query`` and
``count``; each engine names its subclass (``SqliteHistory``, ``PostgresHistory``) with its statements.

Every query has an index matching its filter and its order, and audit counts are kept in
``history_counts`` by the transaction that appends the rows, so a read costs what it returns
(each engine's tests check the plans).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from mockserver.storage.base import MemoryHistory, Record
from mockserver.storage.sqlite_file import VERSIONS_KEY, audit_key

AUDIT_FILTERS = ("profile_id", "action", "user_id")


@dataclass(frozen=True)
class Statements:
    """The history's queries with one parameter marker; the first parameter of each is the session."""

    mark: str

    @property
    def versions(self) -> str:
        return f"SELECT data FROM versions WHERE session = {self.mark} AND profile_id = {self.mark} ORDER BY version"

    @property
    def version(self) -> str:
        m = self.mark
        return f"SELECT data FROM versions WHERE session = {m} AND profile_id = {m} AND version = {m}"

    @property
    def count(self) -> str:
        return f"SELECT n FROM history_counts WHERE session = {self.mark} AND key = {self.mark}"

    @property
    def all_versions(self) -> str:
        return f"SELECT data FROM versions WHERE session = {self.mark} ORDER BY id"

    @property
    def all_audit(self) -> str:
        return f"SELECT data FROM audit WHERE session = {self.mark} ORDER BY id"

    def audit_page(self, used: Sequence[str]) -> str:
        """A page of audit rows, newest first, with these filters (of ``AUDIT_FILTERS``) besides the session."""
        where = " AND ".join([f"session = {self.mark}", *(f"{column} = {self.mark}" for column in used)])
        return f"SELECT data FROM audit WHERE {where} ORDER BY id DESC LIMIT {self.mark} OFFSET {self.mark}"  # noqa: S608


class Rows(Protocol):
    """What a history reads through: an engine's view of one session."""

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Record]: ...
    def count(self, sql: str, parameters: Sequence[Any] = ()) -> int: ...


class DatabaseHistory:
    """Version and audit rows in the database; rows of the write in progress wait in memory."""

    SQL: ClassVar[Statements]

    def __init__(self, file: Rows) -> None:
        self.file = file
        self._versions: list[Record] = []
        self._audit: list[Record] = []

    def add_version(self, row: Record) -> None:
        self._versions.append(row)

    def add_audit(self, row: Record) -> None:
        self._audit.append(row)

    def versions(self, profile_id: int) -> list[Record]:
        # A profile's version numbers rise with its rows' ids, so the index's order is the rows' order.
        stored = self.file.query(self.SQL.versions, (profile_id,))
        return stored + [row for row in self._versions if row["access_profile_id"] == profile_id]

    def version(self, profile_id: int, number: int) -> Record | None:
        found = self.file.query(self.SQL.version, (profile_id, number))
        pending = [r for r in self._versions if r["access_profile_id"] == profile_id and r["version"] == number]
        return next(iter(found + pending), None)

    def audit_page(
        self, profile_id: int | None, action: str | None, user_id: str | None, limit: int, offset: int
    ) -> tuple[list[Record], int]:
        filters = {"profile_id": profile_id, "action": action, "user_id": user_id}
        used = {column: value for column, value in filters.items() if value is not None}
        # Rows of the write in progress are the newest.
        pending = [
            row
            for row in reversed(self._audit)
            if all(row["access_profile_id" if c == "profile_id" else c] == v for c, v in used.items())
        ]
        first = pending[offset : offset + limit]
        stored = self.file.query(
            self.SQL.audit_page(list(used)), (*used.values(), limit - len(first), max(offset - len(pending), 0))
        )
        total = self.file.count(self.SQL.count, (audit_key(profile_id, action, user_id),))
        return first + stored, total + len(pending)

    def rows(self) -> tuple[list[Record], list[Record]]:
        versions = self.file.query(self.SQL.all_versions) + self._versions
        return versions, self.file.query(self.SQL.all_audit) + self._audit

    def sizes(self) -> tuple[int, int]:
        versions = self.file.count(self.SQL.count, (VERSIONS_KEY,))
        audit = self.file.count(self.SQL.count, (audit_key(None, None, None),))
        return versions + len(self._versions), audit + len(self._audit)

    def pending(self) -> tuple[list[Record], list[Record]]:
        return list(self._versions), list(self._audit)

    def mark(self) -> None:
        self._versions.clear()
        self._audit.clear()

    def rollback(self) -> None:
        self.mark()

    def copy(self) -> MemoryHistory:
        return MemoryHistory.of(*self.rows())

    def reader(self) -> DatabaseHistory:
        return type(self)(self.file)  # the database's rows; the pending ones of a write in progress stay out
