"""What a store asks of its storage: every engine answers this, and callers know nothing else.

The interface is the domain's to define (``mockserver.domain.store``): the ``Store`` calls it, and
the domain sits below storage, so it cannot import from here. This module is where the engines and
their callers take it from:

- ``Persistence``: where a store keeps its state between runs (save one write's ``Changes`` in one
  transaction, replace the whole state, named snapshots, close).
- ``HistoryLog``: version and audit rows, appended by writes and read by the history operations;
  ``MemoryHistory`` is the one kept in memory.
- ``Changes``: what one write changed (``State.changes()``), the unit an engine saves.
- ``StateNotSaved``: a write an engine could not save; the store has undone it.

The state in memory without a persistence is the store itself (``persistence=None``), not an engine
object: a store with a persistence publishes a copy of its containers for readers after every write
(microseconds to a quarter of a millisecond), which the in-memory path does not need to pay.
"""

from __future__ import annotations

from mockserver.domain.store import (
    RECORD_KINDS,
    Changes,
    HistoryLog,
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
    "HistoryLog",
    "MemoryHistory",
    "Persistence",
    "Record",
    "State",
    "StateNotSaved",
    "utc_now",
]
