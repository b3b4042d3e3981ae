"""What a store asks of its storage: every engine answers this, and callers know nothing else.

The interface is the domain's to define (``mockserver.domain.store``): the ``Store`` calls it, and
the domain sits below storage, so it cannot import from here. This module is where the engines and
their callers take it from:

- ``Persistence``: where a store keeps its state between runs (save one write's ``Changes`` in one
  transaction, replace the whole state, named snapshots, close), and, when other processes share it
  (``shared``), the change log a store catches up with (``writing``, ``missed``, ``seen``).
- ``LogEntry``: one row of a session's change log (``n``, ``data``; its kinds are listed there).
- ``Engine``: what the server asks of an engine beyond a store's ``Persistence``: a view per session,
  the sessions it keeps, a session's chaos, dropping one, when it was last used.
- ``HistoryLog``: version and audit rows, appended by writes and read by the history operations;
  ``MemoryHistory`` is the one kept in memory.
- ``Changes``: what one write changed (``State.changes()``), the unit an engine saves.
- ``StateNotSaved``: a write an engine could not save; the store has undone it.

The state in memory without a persistence is the store itself (``persistence=None``), not an engine
object: a store with a persistence publishes a copy of its containers for readers after every write
(microseconds to a quarter of a millisecond), which the in-memory path does not need to pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mockserver.domain.store import (
    RECORD_KINDS,
    Changes,
    HistoryLog,
    LogEntry,
    MemoryHistory,
    Persistence,
    Record,
    State,
    StateNotSaved,
    utc_now,
)

__all__ = [
    "RECORD_KINDS",
    "Changes",
    "Engine",
    "HistoryLog",
    "LogEntry",
    "MemoryHistory",
    "Persistence",
    "Record",
    "SavedSession",
    "State",
    "StateNotSaved",
    "utc_now",
]


@dataclass(frozen=True)
class SavedSession:
    """A named session as an engine keeps it."""

    name: str
    created_at: str
    last_used: str
    chaos: dict[str, Any]


class Engine(Persistence, Protocol):
    """A state engine as the server holds it: the default session's ``Persistence``, and the rest.

    - ``view(name)``: the same engine bound to another session (its own ``seen``, ``chaos`` ...).
    - ``sessions()``: every named session it keeps, oldest first.
    - ``set_chaos(chaos)``: keep the session's chosen chaos (a ``"chaos"`` log row).
    - ``drop(idle_before=None)``: delete the session (a ``"dropped"`` log row); with ``idle_before``,
      only when no process used it since then (it expired); whether it was dropped.
    - ``last_used()``: when any process last used the session; ``touch()``: record a use now.
    - ``created_at``, ``chaos``: what a new session's row says (``load`` sets them from a saved one);
      ``now``: the clock of ``last_used`` (None: not recorded).
    """

    created_at: str
    chaos: dict[str, Any]
    now: Callable[[], str] | None

    def view(self, session: str) -> Engine: ...
    def sessions(self) -> list[SavedSession]: ...
    def set_chaos(self, chaos: dict[str, Any]) -> None: ...
    def drop(self, idle_before: datetime | None = None) -> bool: ...
    def last_used(self) -> datetime | None: ...
    def touch(self) -> None: ...
