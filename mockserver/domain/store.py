"""The mock's state: profiles, their history, and the records other operations hang on them.

Records are values: a change builds a new record and swaps it in, and nothing mutates a stored
record in place. That keeps readers consistent without copying and makes snapshots cheap.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

Record = dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _random_uuid() -> str:
    return str(uuid.uuid4())


def fixed_clock(instant: datetime, ticking: bool = False) -> Callable[[], datetime]:
    """A clock that always says ``instant``, or that starts there and runs at the real pace."""
    if not ticking:
        return lambda: instant
    started = time.monotonic()
    return lambda: instant + timedelta(seconds=time.monotonic() - started)


@dataclass
class State:
    """Everything the mock keeps. Only the store hands it out, under its lock."""

    # In ascending id order: new ids are always the largest, and loading sorts the fixtures.
    profiles: dict[int, Record] = field(default_factory=dict)
    # profile id -> history rows, oldest first; kept after the profile is deleted.
    versions: dict[int, list[Record]] = field(default_factory=dict)
    audit: list[Record] = field(default_factory=list)
    role_attachments: list[Record] = field(default_factory=list)
    user_copies: list[Record] = field(default_factory=list)
    roles: dict[int, Record] = field(default_factory=dict)
    users: dict[str, Record] = field(default_factory=dict)
    # Every virtual key issued through access profiles: those a copy produced and extra ones (#20).
    virtual_keys: list[Record] = field(default_factory=list)
    # Last id handed out, per kind of record.
    counters: dict[str, int] = field(default_factory=dict)
    # Profile name -> id, kept by put_profile / remove_profile (names are unique).
    names: dict[str, int] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def put_profile(self, record: Record) -> None:
        """Store a new or changed profile, keeping id order and the name index."""
        old = self.profiles.get(record["id"])
        if old is not None and self.names.get(old["name"]) == old["id"]:
            del self.names[old["name"]]
        ordered = old is not None or not self.profiles or record["id"] > next(reversed(self.profiles))
        self.profiles[record["id"]] = record
        if not ordered:
            self.profiles = dict(sorted(self.profiles.items()))
        self.names[record["name"]] = record["id"]

    def remove_profile(self, profile_id: int) -> Record:
        record = self.profiles.pop(profile_id)
        if self.names.get(record["name"]) == profile_id:
            del self.names[record["name"]]
        return record

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (the inverse of ``from_dict``)."""
        return {
            "profiles": list(self.profiles.values()),
            "versions": [row for rows in self.versions.values() for row in rows],
            "audit": list(self.audit),
            "role_attachments": list(self.role_attachments),
            "user_copies": list(self.user_copies),
            "roles": list(self.roles.values()),
            "users": list(self.users.values()),
            "virtual_keys": list(self.virtual_keys),
            "counters": dict(self.counters),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        state = cls(
            audit=list(data["audit"]),
            role_attachments=list(data["role_attachments"]),
            user_copies=list(data["user_copies"]),
            roles={r["id"]: r for r in data["roles"]},
            users={u["id"]: u for u in data["users"]},
            virtual_keys=list(data["virtual_keys"]),
            counters=dict(data["counters"]),
        )
        for profile in sorted(data["profiles"], key=lambda p: p["id"]):
            state.put_profile(profile)
        for row in data["versions"]:
            state.versions.setdefault(row["access_profile_id"], []).append(row)
        return state

    def copy(self) -> State:
        """A copy whose containers are independent; records are shared, as they are never mutated."""
        return replace(
            self,
            profiles=dict(self.profiles),
            versions={k: list(v) for k, v in self.versions.items()},
            audit=list(self.audit),
            role_attachments=list(self.role_attachments),
            user_copies=list(self.user_copies),
            roles=dict(self.roles),
            users=dict(self.users),
            virtual_keys=list(self.virtual_keys),
            counters=dict(self.counters),
            names=dict(self.names),
        )


class Persistence(Protocol):
    """Where a store keeps its state between runs (mockserver.server.persistence)."""

    def save(self, state: State) -> None: ...
    def replace(self, state: State) -> None: ...
    def save_snapshot(self, name: str, created_at: str, state: State) -> None: ...
    def delete_snapshot(self, name: str) -> None: ...
    def snapshots(self) -> dict[str, tuple[State, str]]: ...


class Store:
    """Thread-safe holder of the state, with ``reset``, ``snapshot`` and ``restore``.

    With a persistence, the state it loaded (or else the seed) is where the store starts, and every
    write is saved before ``write()`` returns.
    """

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
        self._state = (saved or seed).copy()
        self._lock = threading.RLock()
        self.clock = clock
        # Sequential ids come from a counter of the state, so they continue after a restart.
        self.new_uuid = new_uuid or (self._sequential_uuid if sequential_ids else _random_uuid)
        self.persistence = persistence
        # Named snapshots of the whole state, with the time they were taken.
        self._named: dict[str, tuple[State, str]] = {}
        if persistence is not None:
            if saved is None:
                persistence.replace(self._state)
            self._named = persistence.snapshots()

    def _sequential_uuid(self) -> str:
        return f"00000000-0000-4000-8000-{self._state.next_id('uuid'):012d}"

    @contextmanager
    def atomic(self) -> Iterator[State]:
        """Exclusive access for a read."""
        with self._lock:
            yield self._state

    @contextmanager
    def write(self) -> Iterator[State]:
        """Exclusive access for a read-modify-write; saved (durably, with a persistence) on success."""
        with self._lock:
            yield self._state
            if self.persistence is not None:
                self.persistence.save(self._state)

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
        with self._lock:
            return self._state.copy()

    def restore(self, snapshot: State) -> None:
        with self._lock:
            self._state = snapshot.copy()
            if self.persistence is not None:
                self.persistence.replace(self._state)

    def save_named(self, name: str, created_at: str) -> tuple[State, str]:
        """Keep the current state under a name (replacing one of that name)."""
        with self._lock:
            saved = (self._state.copy(), created_at)
            self._named[name] = saved
            if self.persistence is not None:
                self.persistence.save_snapshot(name, created_at, saved[0])
        return saved

    def named(self) -> dict[str, tuple[State, str]]:
        with self._lock:
            return dict(self._named)

    def restore_named(self, name: str) -> tuple[State, str] | None:
        with self._lock:
            saved = self._named.get(name)
            if saved is not None:
                self.restore(saved[0])
            return saved

    def delete_named(self, name: str) -> bool:
        with self._lock:
            if self._named.pop(name, None) is None:
                return False
            if self.persistence is not None:
                self.persistence.delete_snapshot(name)
            return True
