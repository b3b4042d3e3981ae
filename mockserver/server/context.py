"""The per-app state every request handler works from."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from flask import current_app

from mockserver.domain.auth import Authenticator
from mockserver.domain.copies import Copies
from mockserver.domain.history import History
from mockserver.domain.profiles import Profiles
from mockserver.domain.roles import Roles
from mockserver.domain.store import Store
from mockserver.server.journal import Journal
from mockserver.server.prefer import Chaos
from mockserver.settings import Settings
from mockserver.spec.document import Spec
from mockserver.spec.validation import Validator

log = logging.getLogger("mockserver")


class Operations(TypedDict):
    """The domain objects a mock's handlers call, by their field names on ``Mock``."""

    profiles: Profiles
    roles: Roles
    copies: Copies
    history: History


def operations(store: Store, spec: Spec) -> Operations:
    """The domain objects bound to ``store`` and reading ``spec``."""
    return Operations(
        profiles=Profiles(store, spec),
        roles=Roles(store),
        copies=Copies(store, spec),
        history=History(store, spec.page_size),
    )


@dataclass(frozen=True)
class Violation:
    """An answer of ours that broke the contract, or a failure inside the mock."""

    operation_id: str | None
    method: str
    path: str
    status: int | None  # None: not about one answer (the validators disagreed)
    problems: tuple[str, ...]

    def __str__(self) -> str:
        where = f"{self.operation_id or '(no operation)'} ({self.method} {self.path})"
        what = f" answered {self.status}" if self.status is not None else ""
        return f"{where}{what}: {'; '.join(self.problems)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "problems": list(self.problems),
        }


class Violations:
    """The last ``size`` violations recorded, and how many older ones were dropped to stay within it."""

    def __init__(self, size: int = 1000) -> None:
        self._kept: deque[Violation] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, violation: Violation) -> None:
        with self._lock:
            if len(self._kept) == self._kept.maxlen:
                self.dropped += 1
            self._kept.append(violation)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.dropped = 0

    def __iter__(self) -> Iterator[Violation]:
        with self._lock:
            return iter(list(self._kept))

    def __len__(self) -> int:
        return len(self._kept)


@dataclass
class Mock:
    """Everything one app serves from, kept in ``app.extensions["mockserver"]``."""

    settings: Settings
    spec: Spec
    store: Store
    profiles: Profiles
    roles: Roles
    copies: Copies
    history: History
    auth: Authenticator
    validator: Validator
    journal: Journal = field(default_factory=Journal)
    chaos: Chaos = field(default_factory=Chaos)
    violations: Violations = field(default_factory=Violations)
    session: str | None = None  # the session this mock serves (None: the default state)

    def record(self, violation: Violation) -> None:
        log.error("contract violation: %s", violation)
        self.violations.append(violation)

    def over(
        self,
        store: Store,
        chaos: Chaos,
        journal: Journal | None = None,
        violations: Violations | None = None,
        session: str | None = None,
    ) -> Mock:
        """This mock over another state (a session's): the same spec, validator and auth, with the
        operations bound to ``store`` and a journal, chaos and violations of its own (the journal
        shares this one's byte budget)."""
        return replace(
            self,
            store=store,
            **operations(store, self.spec),
            journal=journal if journal is not None else Journal(budget=self.journal.budget),
            chaos=chaos,
            violations=violations if violations is not None else Violations(),
            session=session,
        )


def current_mock() -> Mock:
    """The ``Mock`` of the app handling the current request."""
    return current_app.extensions["mockserver"]  # type: ignore[no-any-return]
