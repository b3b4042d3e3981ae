"""The mock's state: profiles, their history, and the records other operations hang on them.

Records are values: a change builds a new record and swaps it in, and nothing mutates a stored
record in place. That keeps readers consistent without copying and makes snapshots cheap.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


class Store:
    """Thread-safe holder of the state, with ``reset``, ``snapshot`` and ``restore``."""

    def __init__(
        self,
        seed: State,
        clock: Callable[[], datetime] = utc_now,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._seed = seed.copy()
        self._state = seed.copy()
        self._lock = threading.RLock()
        self.clock = clock
        self.new_uuid = new_uuid

    @contextmanager
    def atomic(self) -> Iterator[State]:
        """Exclusive access for one read or one read-modify-write."""
        with self._lock:
            yield self._state

    def reset(self) -> None:
        """Back to the state the store was created with (the loaded fixtures)."""
        self.restore(self._seed)

    def snapshot(self) -> State:
        with self._lock:
            return self._state.copy()

    def restore(self, snapshot: State) -> None:
        with self._lock:
            self._state = snapshot.copy()
