"""The mock's state: profiles, their history, and the records other operations hang on them.

Records are values: a change builds a new record and swaps it in, and nothing mutates a stored
record in place. That keeps readers consistent without copying and makes snapshots cheap.

A write also knows what it changed, without looking at the rest of the state: profiles are
changed through ``put_profile`` / ``remove_profile``, history rows are only ever appended, and the
other collections are tuples that a change replaces whole. So a write can be saved in what it
costs to change, and undone when it cannot be saved.

The same description of a write is what other processes sharing the state apply (``LogEntry``,
``State.apply``): every write is a row of its session's change log, and a process catches up with
the rows it has not seen before it reads or writes (``Store`` in shared mode).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from mockserver.spec.errors import InternalError

Record = dict[str, Any]
Records = tuple[Record, ...]


def utc_now() -> datetime:
    return datetime.now(UTC)


# Ids and key values of a mock need to be unique, not secret. uuid.uuid4() asks the system for
# random bytes on every call, a system call that costs more than the rest of a create on a
# slow virtual machine, and it is made under the store's lock; a generator seeded once is not.
_IDS = random.Random(os.urandom(32))
# A worker forked from a process that imported this module would otherwise hand out its parent's
# sequence, the same as every other worker's (--workers): each child draws its own seed.
os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))


def _random_uuid() -> str:
    return str(uuid.UUID(int=_IDS.getrandbits(128), version=4))


def fixed_clock(instant: datetime, ticking: bool = False) -> Callable[[], datetime]:
    """A clock that always says ``instant``, or that starts there and runs at the real pace."""
    if not ticking:
        return lambda: instant
    started = time.monotonic()
    return lambda: instant + timedelta(seconds=time.monotonic() - started)


class HistoryLog(Protocol):
    """Version rows and audit rows: appended by writes, read by the history operations.

    Rows appended since the last ``mark`` are *pending*: a save writes them, then marks; a write
    that cannot be saved drops them with ``rollback``.
    """

    def add_version(self, row: Record) -> None: ...
    def add_audit(self, row: Record) -> None: ...
    def versions(self, profile_id: int) -> list[Record]: ...
    def version(self, profile_id: int, number: int) -> Record | None: ...
    def audit_page(
        self, profile_id: int | None, action: str | None, user_id: str | None, limit: int, offset: int
    ) -> tuple[list[Record], int]: ...
    def rows(self) -> tuple[list[Record], list[Record]]: ...
    def sizes(self) -> tuple[int, int]: ...
    def pending(self) -> tuple[list[Record], list[Record]]: ...
    def mark(self) -> None: ...
    def rollback(self) -> None: ...
    def copy(self) -> MemoryHistory: ...
    def reader(self) -> HistoryLog:
        """The rows saved so far, for readers: no row a later write appends reaches them before it is saved."""
        ...


@dataclass(eq=False)
class MemoryHistory:
    """A history kept in memory: version rows per profile, and the audit trail, oldest first."""

    by_profile: dict[int, list[Record]] = field(default_factory=dict)
    audit: list[Record] = field(default_factory=list)
    # Since the last mark: how many version rows each touched profile had, and the audit length.
    _versions_mark: dict[int, int] = field(default_factory=dict)
    _audit_mark: int = 0

    def __post_init__(self) -> None:
        self._audit_mark = len(self.audit)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryHistory):
            return NotImplemented
        return self.rows() == other.rows()

    def add_version(self, row: Record) -> None:
        rows = self.by_profile.setdefault(row["access_profile_id"], [])
        self._versions_mark.setdefault(row["access_profile_id"], len(rows))
        rows.append(row)

    def add_audit(self, row: Record) -> None:
        self.audit.append(row)

    def versions(self, profile_id: int) -> list[Record]:
        return list(self.by_profile.get(profile_id, ()))

    def version(self, profile_id: int, number: int) -> Record | None:
        return next((row for row in self.by_profile.get(profile_id, ()) if row["version"] == number), None)

    def audit_page(
        self, profile_id: int | None, action: str | None, user_id: str | None, limit: int, offset: int
    ) -> tuple[list[Record], int]:
        rows = [
            row
            for row in reversed(self.audit)
            if (profile_id is None or row["access_profile_id"] == profile_id)
            and (action is None or row["action"] == action)
            and (user_id is None or row["user_id"] == user_id)
        ]
        return rows[offset : offset + limit], len(rows)

    def rows(self) -> tuple[list[Record], list[Record]]:
        """Every version row (by id) and every audit row, oldest first."""
        versions = sorted((row for rows in self.by_profile.values() for row in rows), key=lambda row: row["id"])
        return versions, list(self.audit)

    def sizes(self) -> tuple[int, int]:
        """(version rows, audit rows)."""
        return sum(map(len, self.by_profile.values())), len(self.audit)

    def pending(self) -> tuple[list[Record], list[Record]]:
        versions = [row for pid, n in self._versions_mark.items() for row in self.by_profile[pid][n:]]
        return versions, self.audit[self._audit_mark :]

    def mark(self) -> None:
        self._versions_mark.clear()
        self._audit_mark = len(self.audit)

    def rollback(self) -> None:
        for profile_id, n in self._versions_mark.items():
            del self.by_profile[profile_id][n:]
            if not self.by_profile[profile_id]:
                del self.by_profile[profile_id]
        del self.audit[self._audit_mark :]
        self.mark()

    def copy(self) -> MemoryHistory:
        """Independent lists; the rows are shared, as they are never mutated."""
        return MemoryHistory({k: list(v) for k, v in self.by_profile.items()}, list(self.audit))

    def reader(self) -> MemoryHistory:
        return self.copy()  # costs the history's length: a store publishes readers' states with a persistence only

    @classmethod
    def of(cls, versions: list[Record], audit: list[Record]) -> MemoryHistory:
        history = cls()
        for row in versions:
            history.by_profile.setdefault(row["access_profile_id"], []).append(row)
        history.audit = list(audit)
        history.mark()
        return history


@dataclass(frozen=True)
class Changes:
    """What one write changed: the records to save (kind, key, record) and the keys to delete."""

    saved: list[tuple[str, str, Record]]
    removed: list[tuple[str, str]]
    versions: list[Record]
    audit: list[Record]
    counters: dict[str, int] | None  # None: unchanged

    def __bool__(self) -> bool:
        return bool(self.saved or self.removed or self.versions or self.audit or self.counters is not None)


# Records other than history, as (kind as saved, attribute of State). Profiles change one by one
# (put_profile / remove_profile); the other collections are replaced whole by a change.
_PROFILE = "profile"
_TUPLES = (("role_attachment", "role_attachments"), ("user_copy", "user_copies"), ("virtual_key", "virtual_keys"))
_MAPPINGS = (("role", "roles"), ("user", "users"))
_COLLECTIONS = ((_PROFILE, "profiles"), *_TUPLES, *_MAPPINGS)
RECORD_KINDS = tuple(kind for kind, _ in _COLLECTIONS)


@dataclass(eq=False)
class State:
    """Everything the mock keeps. Only the store hands it out, under its lock."""

    # In ascending id order: new ids are always the largest, and loading sorts the fixtures.
    profiles: dict[int, Record] = field(default_factory=dict)
    history: HistoryLog = field(default_factory=MemoryHistory)
    role_attachments: Records = ()
    user_copies: Records = ()
    roles: dict[int, Record] = field(default_factory=dict)
    users: dict[str, Record] = field(default_factory=dict)
    # Every virtual key issued through access profiles: those a copy produced and extra ones (#20).
    virtual_keys: Records = ()
    # Last id handed out, per kind of record.
    counters: dict[str, int] = field(default_factory=dict)
    # Profile name -> id, kept by put_profile / remove_profile (names are unique).
    names: dict[str, int] = field(default_factory=dict)
    # Since the last mark: each changed profile as it was (None: it did not exist), the counters,
    # and the collections that are replaced whole.
    _profiles_before: dict[int, Record | None] = field(default_factory=dict)
    _marked: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mark()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def next_id(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def put_profile(self, record: Record) -> None:
        """Store a new or changed profile, keeping id order and the name index."""
        old = self.profiles.get(record["id"])
        self._profiles_before.setdefault(record["id"], old)
        if old is not None and self.names.get(old["name"]) == old["id"]:
            del self.names[old["name"]]
        ordered = old is not None or not self.profiles or record["id"] > next(reversed(self.profiles))
        self.profiles[record["id"]] = record
        if not ordered:
            self.profiles = dict(sorted(self.profiles.items()))
        self.names[record["name"]] = record["id"]

    def remove_profile(self, profile_id: int) -> Record:
        record = self.profiles.pop(profile_id)
        self._profiles_before.setdefault(profile_id, record)
        if self.names.get(record["name"]) == profile_id:
            del self.names[record["name"]]
        return record

    # -- what a write changed ----------------------------------------------------------------------

    def mark(self) -> None:
        """What the state holds now is saved: later changes are measured from here."""
        self._profiles_before.clear()
        self._marked = {attr: getattr(self, attr) for _, attr in _TUPLES + _MAPPINGS}
        self._marked["lengths"] = {attr: len(getattr(self, attr)) for _, attr in _MAPPINGS}
        self._marked["counters"] = dict(self.counters)
        self.history.mark()

    def changes(self) -> Changes:
        """What changed since the last mark, found without looking at anything unchanged."""
        saved: list[tuple[str, str, Record]] = []
        removed: list[tuple[str, str]] = []
        for profile_id, before in self._profiles_before.items():
            now = self.profiles.get(profile_id)
            if now is None:
                if before is not None:
                    removed.append((_PROFILE, str(profile_id)))
            elif now is not before:
                saved.append((_PROFILE, str(profile_id), now))
        for kind, attr in _TUPLES + _MAPPINGS:
            old, new = self._marked[attr], getattr(self, attr)
            if new is old and (attr not in self._marked["lengths"] or len(new) == self._marked["lengths"][attr]):
                continue
            # Replaced whole: compare by identity (records are values); this costs what the change did.
            old_items = dict(_keyed(old))
            new_items = dict(_keyed(new))
            saved += [(kind, key, r) for key, r in new_items.items() if old_items.get(key) is not r]
            removed += [(kind, key) for key in old_items if key not in new_items]
        versions, audit = self.history.pending()
        counters = dict(self.counters) if self.counters != self._marked["counters"] else None
        return Changes(saved, removed, versions, audit, counters)

    def rollback(self) -> None:
        """Undo every change since the last mark (a write that could not be saved)."""
        for profile_id, before in self._profiles_before.items():
            current = self.profiles.get(profile_id)
            if current is not None and self.names.get(current["name"]) == profile_id:
                del self.names[current["name"]]
            if before is None:
                self.profiles.pop(profile_id, None)
            else:
                self.profiles[profile_id] = before
                self.names[before["name"]] = profile_id
        if self._profiles_before:  # a removed profile put back comes last: restore the id order
            self.profiles = dict(sorted(self.profiles.items()))
        for _, attr in _TUPLES + _MAPPINGS:
            setattr(self, attr, self._marked[attr])
        self.counters = dict(self._marked["counters"])
        self.history.rollback()
        self.mark()

    def apply(self, data: Mapping[str, Any]) -> None:
        """Another process's write (the ``data`` of a ``"write"`` log row), made here as it was made there.

        Profiles go through ``put_profile`` / ``remove_profile`` (id order, name index); the collections
        replaced whole are rebuilt keeping their order: a changed record stays where it was, a new one
        comes last, as the writer's own change put it. The result is marked: it is saved already.
        """
        saved: dict[str, dict[str, Record]] = {}
        removed: dict[str, set[str]] = {}
        for kind, key, record in data["saved"]:
            if kind == _PROFILE:
                self.put_profile(record)
            else:
                saved.setdefault(kind, {})[key] = record
        for kind, key in data["removed"]:
            if kind == _PROFILE:
                if int(key) in self.profiles:
                    self.remove_profile(int(key))
            else:
                removed.setdefault(kind, set()).add(key)
        for kind, attr in _TUPLES + _MAPPINGS:
            new, gone = saved.get(kind, {}), removed.get(kind, set())
            if not new and not gone:
                continue
            current = getattr(self, attr)
            kept = [
                new.pop(key, record) for key, record in _keyed(current) if key not in gone
            ]  # changed ones in place; what is left of ``new`` did not exist here
            kept += new.values()
            setattr(self, attr, {r["id"]: r for r in kept} if isinstance(current, Mapping) else tuple(kept))
        if data.get("counters") is not None:
            self.counters = dict(data["counters"])
        self.mark()

    # -- whole-state operations --------------------------------------------------------------------

    def records(self) -> Iterator[tuple[str, str, Record]]:
        """(kind, key, record) of every record, history aside; each kind in the order it is kept."""
        for kind, attr in _COLLECTIONS:
            for key, record in _keyed(getattr(self, attr)):
                yield kind, key, record

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (the inverse of ``from_dict``)."""
        versions, audit = self.history.rows()
        return {
            "profiles": list(self.profiles.values()),
            "versions": versions,
            "audit": audit,
            "role_attachments": list(self.role_attachments),
            "user_copies": list(self.user_copies),
            "roles": list(self.roles.values()),
            "users": list(self.users.values()),
            "virtual_keys": list(self.virtual_keys),
            "counters": dict(self.counters),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], history: HistoryLog | None = None) -> State:
        """A state from ``to_dict`` data; ``history`` replaces the rows of ``data`` when given."""
        state = cls(
            history=history or MemoryHistory.of(data["versions"], data["audit"]),
            role_attachments=tuple(data["role_attachments"]),
            user_copies=tuple(data["user_copies"]),
            roles={r["id"]: r for r in data["roles"]},
            users={u["id"]: u for u in data["users"]},
            virtual_keys=tuple(data["virtual_keys"]),
            counters=dict(data["counters"]),
        )
        for profile in sorted(data["profiles"], key=lambda p: p["id"]):
            state.put_profile(profile)
        state.mark()
        return state

    def copy(self, history: HistoryLog | None = None) -> State:
        """A copy whose containers are independent; records are shared, as they are never mutated.

        The copy keeps its history in memory, unless ``history`` is given to use instead.
        """
        return State(
            profiles=dict(self.profiles),
            history=history or self.history.copy(),
            role_attachments=self.role_attachments,
            user_copies=self.user_copies,
            roles=dict(self.roles),
            users=dict(self.users),
            virtual_keys=self.virtual_keys,
            counters=dict(self.counters),
            names=dict(self.names),
        )

    def counts(self) -> dict[str, int]:
        """How many records of each kind the state holds."""
        versions, audit = self.history.sizes()
        return {
            "profiles": len(self.profiles),
            "versions": versions,
            "audit_logs": audit,
            "roles": len(self.roles),
            "role_attachments": len(self.role_attachments),
            "users": len(self.users),
            "user_copies": len(self.user_copies),
            "virtual_keys": len(self.virtual_keys),
        }


def _keyed(items: Records | Mapping[Any, Record]) -> Iterator[tuple[str, Record]]:
    records = items.values() if isinstance(items, Mapping) else items
    return ((str(record["id"]), record) for record in records)


class StateNotSaved(InternalError):
    """A write could not be saved (the state file cannot be written); the state is as it was before it."""


@dataclass(frozen=True)
class LogEntry:
    """One row of a session's change log: ``n`` (1, 2, 3 ... in commit order, without gaps) and ``data``.

    ``data["kind"]`` is one of:

    - ``"write"``: ``{"saved": [[kind, key, record], ...], "removed": [[kind, key], ...], "counters": {...} |
      None}``, a write's ``Changes`` without its history rows (those stay in the history tables);
    - ``"replace"``: the session's whole state was replaced (reset, restore, a snapshot restored, the
      session created): load it again;
    - ``"chaos"``: ``{"chaos": {...}}``, the chaos the session chose;
    - ``"dropped"``: ``{"expired": bool}``, the session was deleted (or expired).
    """

    n: int
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data["kind"])


# What a store does with each kind of log row it catches up with.
_STATE_KINDS = frozenset({"write", "replace"})


class Persistence(Protocol):
    """Where a store keeps its state between runs: the interface of ``mockserver.storage``'s engines.

    ``shared``: other processes write this state too. Then every change is a row of the session's
    change log, and the store catches up before it reads (``missed``) or writes (``writing``):

    - ``seen`` is the ``n`` of the last log row this process's state holds; ``load`` sets it (the
      last row as of the state it loaded), a write made inside ``writing`` sets it to its own row, and
      the store to each row it applies.
    - ``writing()`` is a transaction holding the session's write lock; it yields the rows after
      ``seen`` that others committed. ``save``, ``replace``, ``restore_snapshot``, ``save_snapshot``,
      ``set_chaos`` and ``drop`` called inside it join that transaction, which commits when the block
      ends; on any failure it rolls back, raising ``StateNotSaved`` (or ``StoreUnavailable``), and
      ``seen`` is as it was after the rows it yielded.
    - ``missed()`` is the rows after ``seen``, without a lock: one indexed query, ``[]`` when none.
    - ``unchanged()``, where an engine has it, says without a query and without waiting that ``missed()``
      would find nothing (SQLite: no commit to the file since it last did); the store then skips it.
    - ``reads_wait``: whether ``missed()`` may wait (a round trip to a server: True; a query of a local
      file in WAL mode, which never waits for a writer: False).
    """

    shared: bool
    reads_wait: bool
    seen: int

    def writing(self) -> AbstractContextManager[list[LogEntry]]: ...
    def missed(self) -> list[LogEntry]: ...
    def load(self) -> State | None: ...
    def save(self, changes: Changes) -> None: ...
    def replace(self, state: State) -> State: ...
    def save_snapshot(self, name: str, created_at: str, state: State) -> int: ...
    def restore_snapshot(self, name: str) -> State | None: ...
    def delete_snapshot(self, name: str) -> bool: ...
    def snapshots(self) -> dict[str, tuple[str, int]]: ...
    def close(self) -> None: ...


class Store:
    """Thread-safe holder of the state, with ``reset``, ``snapshot`` and ``restore``.

    With a persistence, the state it loaded (or else the seed) is where the store starts, and every
    write is saved before ``write()`` returns; a write that cannot be saved is undone and raises
    ``StateNotSaved``.

    Writes take the store's lock one at a time. Without a persistence a read takes it too (a write
    holds it for microseconds). With one, a write holds it through its disk sync, so readers do not
    take it: they read the state as of the last saved write, a copy of its containers published when
    the write is saved (records are values and are shared). A read never waits for a write, and never
    sees one that is not yet saved.

    With a shared persistence (several processes on one state), a write runs inside the persistence's
    ``writing()`` transaction: it applies what other processes committed first, so its rules (names,
    ids, versions) check the current state, and it saves in the same transaction. A read first asks
    for rows it has not seen (``missed``) and applies them, so it sees every write acknowledged before
    it began, wherever it was made. Rows that are not about the state (``chaos``, ``dropped``) go to
    ``events``, which the sessions registry sets. A store that finds no saved state seeds it from
    ``seed`` inside that transaction (the first process does; the others load it): ``created`` says
    which.
    """

    # Around a wait that is not CPU work (a save's commit and sync, a shared state's round trips): nothing
    # here; a server that runs one request's Python at a time gives its turn up (server.turns).
    waiting: ClassVar[Callable[[], AbstractContextManager[object]]] = staticmethod(nullcontext)

    def __init__(
        self,
        seed: State,
        clock: Callable[[], datetime] = utc_now,
        new_uuid: Callable[[], str] | None = None,
        persistence: Persistence | None = None,
        saved: State | None = None,
        sequential_ids: bool = False,
    ) -> None:
        self._seed = seed.copy()
        self._lock = threading.RLock()
        self._writing = False
        self._writer: int | None = None  # the thread holding the lock for a write or a whole-state operation
        self._view: State | None = None  # what readers see, with a persistence
        self.clock = clock
        # Sequential ids come from a counter of the state, so they continue after a restart.
        self.new_uuid = new_uuid or (self._sequential_uuid if sequential_ids else _random_uuid)
        self.persistence = persistence
        self.shared = persistence is not None and persistence.shared
        # Log rows that are not about the state (chaos, dropped), called outside the store's lock.
        self.events: Callable[[LogEntry], None] | None = None
        self.dropped = False  # another process deleted this (session's) state: writes are refused
        self.created = saved is None  # this store seeded its state (False: it found one saved)
        # Named snapshots of the whole state, with the time they were taken (kept by the persistence
        # when there is one, so they need no memory here).
        self._named: dict[str, tuple[State, str]] = {}
        if saved is not None:
            self._state = saved
        elif persistence is not None and self.shared:
            with Store.waiting(), persistence.writing():  # seed once: the first process to find nothing seeds it
                found = persistence.load()
                self.created = found is None
                self._state = persistence.replace(seed.copy()) if found is None else found
        elif persistence is not None:
            self._state = persistence.replace(seed.copy())
        else:
            self._state = seed.copy()
        self._publish()

    def _sequential_uuid(self) -> str:
        return f"00000000-0000-4000-8000-{self._state.next_id('uuid'):012d}"

    def _publish(self) -> None:
        """With a persistence: readers see the state as it is now (saved) until the next write is saved."""
        if self.persistence is not None:
            self._view = self._state.copy(history=self._state.history.reader())

    # -- catching up with other processes (shared persistence only) ----------------------------------

    def catch_up(self) -> None:
        """Apply what other processes committed since this store last looked (shared mode; else nothing)."""
        if not self.shared or self.dropped or self._writer == threading.get_ident():
            return
        assert self.persistence is not None
        # An engine that can tell at once that nothing was committed (SQLite's data_version) saves the query,
        # and the request keeps its turn (Store.waiting gives it up).
        unchanged = getattr(self.persistence, "unchanged", None)
        if unchanged is not None and unchanged():
            return
        if self.persistence.reads_wait:
            with Store.waiting():
                entries = self.persistence.missed()
        else:  # a local file's query, which never waits for a writer: the request keeps its turn
            entries = self.persistence.missed()
        if not entries:
            return
        with self._locked():  # a write saving holds the lock: this waits after ``waiting``
            events = self._apply(entries)
            self._publish()
        self._tell(events)

    def _apply(self, entries: list[LogEntry]) -> list[LogEntry]:
        """Apply log rows not applied yet (under the lock); the rows that are not about the state."""
        persistence = self.persistence
        assert persistence is not None
        events: list[LogEntry] = []
        for entry in entries:
            if entry.n <= persistence.seen:  # another thread applied it meanwhile
                continue
            kind = entry.kind
            if kind == "dropped":  # nothing after it is about this store: a session made again is another
                self.dropped = True
                events.append(entry)
                break
            if entry.n > persistence.seen + 1 or kind == "replace":
                # Replaced whole, or older rows were pruned before this process read them: load it again.
                found = persistence.load()  # sets seen: the last row as of what it loaded
                if found is None:  # the session is gone: its "dropped" row is among these, or was pruned
                    self.dropped = True
                    gone = LogEntry(entry.n, {"kind": "dropped", "expired": False})
                    events.append(next((e for e in entries if e.kind == "dropped"), gone))
                    break
                self._state = found
                if kind not in _STATE_KINDS:
                    events.append(entry)
                persistence.seen = max(persistence.seen, entry.n)
                continue
            if kind == "write":
                self._state.apply(entry.data)
            else:
                events.append(entry)
            persistence.seen = entry.n
        return events

    def _tell(self, events: list[LogEntry]) -> None:
        if self.events is not None:
            for entry in events:
                self.events(entry)

    @contextmanager
    def _shared_write(self) -> Iterator[State]:
        """Under the lock: the persistence's write transaction, caught up; yields the state to change."""
        assert self.persistence is not None
        events: list[LogEntry] = []
        try:
            with Store.waiting(), self.persistence.writing() as entries:
                if entries:
                    events = self._apply(entries)
                    self._publish()
                if self.dropped:
                    raise StateNotSaved("this session was deleted by another process; nothing was changed")
                yield self._state
        finally:
            self._tell(events)

    # -- reading and writing -------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[State]:
        """A consistent state to read (never to change: use ``write``).

        With a persistence, the state as of the last saved write, without waiting for a write in
        progress; inside a write (the same thread), the state that write is changing. Shared: every
        write acknowledged before this call is in it, wherever it was made.
        """
        if self.shared:
            self.catch_up()
        view = self._view
        if view is not None and self._writer != threading.get_ident():
            yield view
            return
        with self._lock:
            yield self._state

    @contextmanager
    def exclusive(self) -> Iterator[State]:
        """No write of this store runs meanwhile (a whole-state operation on its persistence)."""
        with self._lock:
            outer, self._writer = self._writer, threading.get_ident()
            try:
                yield self._state
            finally:
                self._writer = outer

    @contextmanager
    def _locked(self, waits: bool = False) -> Iterator[None]:
        """The store's lock. A thread that has to wait for it (another write saving), or that will wait
        under it (``waits``: on the persistence), does so after ``waiting``."""
        if waits or not self._lock.acquire(blocking=False):
            with Store.waiting():
                self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def write(self) -> Iterator[State]:
        """Exclusive access for a read-modify-write: saved (durably, with a persistence) on success,
        undone when the body raises or the save fails."""
        with self._locked():
            if self._writing:  # a write inside a write: the outer one saves or undoes both
                yield self._state
                return
            self._writing = True
            self._writer = threading.get_ident()
            try:
                if self.shared:
                    yield from self._write_shared()
                else:
                    yield from self._write_alone()
            finally:
                self._writing = False
                self._writer = None

    def _write_alone(self) -> Iterator[State]:
        state = self._state
        try:
            yield state
            if self.persistence is not None:
                changes = state.changes()
                if changes:
                    with Store.waiting():
                        self.persistence.save(changes)
        except BaseException:
            state.rollback()
            raise
        state.mark()
        self._publish()

    def _write_shared(self) -> Iterator[State]:
        assert self.persistence is not None
        state: State | None = None
        try:
            with self._shared_write() as state:
                yield state
                changes = state.changes()
                if changes:
                    self.persistence.save(changes)
        except BaseException:
            if state is not None:
                state.rollback()
            raise
        state.mark()
        self._publish()

    @contextmanager
    def _whole(self) -> Iterator[None]:
        """A whole-state operation: under the lock, inside the write transaction when shared."""
        with self._locked(waits=self.persistence is not None):
            if not self.shared:
                yield
                return
            outer, self._writer = self._writer, threading.get_ident()
            before: State | None = None
            try:
                with self._shared_write() as before:
                    yield
            except BaseException:
                if before is not None and self._state is not before:  # replaced, then not committed
                    self._state = before
                    self._publish()
                raise
            finally:
                self._writer = outer

    @property
    def seed(self) -> State:
        return self._seed

    @seed.setter
    def seed(self, seed: State) -> None:
        """A new state for ``reset`` to go back to (the current state is kept)."""
        with self._lock:
            self._seed = seed.copy()

    def reset(self) -> None:
        """Back to the seed (the loaded fixtures)."""
        self.restore(self._seed)

    def snapshot(self) -> State:
        self.catch_up()
        with self._lock:
            return self._state.copy()

    def restore(self, snapshot: State) -> None:
        with self._whole():
            state = snapshot.copy()
            self._state = self.persistence.replace(state) if self.persistence is not None else state
            self._publish()

    def save_named(self, name: str, created_at: str) -> int:
        """Keep the current state under a name (replacing one of that name); its number of profiles."""
        with self._whole():
            if self.persistence is not None:
                return self.persistence.save_snapshot(name, created_at, self._state)
            self._named[name] = (self._state.copy(), created_at)
            return len(self._state.profiles)

    def named(self) -> dict[str, tuple[str, int]]:
        """Name -> (when it was taken, number of profiles), for every named snapshot."""
        with self._lock:
            if self.persistence is not None:
                return self.persistence.snapshots()
            return {name: (created_at, len(state.profiles)) for name, (state, created_at) in self._named.items()}

    def restore_named(self, name: str) -> tuple[str, int] | None:
        with self._whole():
            if self.persistence is not None:
                restored = self.persistence.restore_snapshot(name)
                if restored is None:
                    return None
                self._state = restored
                self._publish()
            else:
                saved = self._named.get(name)
                if saved is None:
                    return None
                self.restore(saved[0])
            return self.named()[name]

    def delete_named(self, name: str) -> bool:
        with self._lock:
            if self.persistence is not None:
                return self.persistence.delete_snapshot(name)
            return self._named.pop(name, None) is not None

    def close(self) -> None:
        """Let go of the state file, if there is one (another process or app may then open it)."""
        with self._lock:
            if self.persistence is not None:
                self.persistence.close()
