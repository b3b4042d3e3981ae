"""The per-app state every request handler works from."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypedDict

from flask import current_app

from mockserver.domain.auth import Authenticator
from mockserver.domain.copies import Copies
from mockserver.domain.history import History
from mockserver.domain.profiles import Profiles
from mockserver.domain.roles import Roles
from mockserver.domain.store import Store
from mockserver.domain.timeutil import format_timestamp
from mockserver.server.journal import Budget, Journal, Recorder, SharedJournal, instance_name
from mockserver.server.prefer import Chaos
from mockserver.settings import Settings
from mockserver.spec.document import Spec
from mockserver.spec.errors import StoreUnavailable
from mockserver.spec.validation import Validator
from mockserver.storage.shared_log import LogRow, SharedLog, open_log

VIOLATIONS_KEPT = 1000  # the newest violations each session keeps

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
    instance: str | None = None  # in a shared state, the instance that recorded it

    def __str__(self) -> str:
        where = f"{self.operation_id or '(no operation)'} ({self.method} {self.path})"
        what = f" answered {self.status}" if self.status is not None else ""
        return f"{where}{what}: {'; '.join(self.problems)}"

    def as_dict(self) -> dict[str, Any]:
        found = {
            "operation_id": self.operation_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "problems": list(self.problems),
        }
        if self.instance is not None:  # a shared state's; a mock of its own shows what it always did
            found["instance"] = self.instance
        return found


class Violations:
    """The last ``size`` violations recorded, and how many older ones were dropped to stay within it."""

    def __init__(self, size: int = VIOLATIONS_KEPT) -> None:
        self._kept: deque[Violation] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.dropped = 0

    def sibling(self, session: str | None) -> Violations:
        """New violations for another session of the same mock."""
        return Violations(self._kept.maxlen or VIOLATIONS_KEPT)

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


class SharedViolations(Violations):
    """One session's violations in a shared state: every instance's, in the shared log.

    Written as they happen (they are rare); one that cannot be written (the database away) is counted
    in ``dropped`` and is still in the log line ``Mock.record`` writes, and the request goes on.
    ``dropped`` counts this process's: those it could not write and those it cut to the bound.
    """

    def __init__(self, shared: SharedLog, instance: str, session: str | None, size: int = VIOLATIONS_KEPT) -> None:
        super().__init__(size)
        self.log = shared
        self.instance = instance
        self.session = session or ""
        self.size = size

    def append(self, violation: Violation) -> None:
        at = format_timestamp(datetime.now(UTC))
        row = LogRow(self.session, self.instance, at, json.dumps(violation.as_dict(), ensure_ascii=False))
        try:
            cut = self.log.add_violation(row, self.size)
        except StoreUnavailable as exc:
            cut = 1
            log.warning("a violation was not written to the shared state: %s", exc.message)
        with self._lock:
            self.dropped += cut

    def clear(self) -> None:
        self.log.clear_violations(self.session)
        with self._lock:
            self.dropped = 0

    def sibling(self, session: str | None) -> Violations:
        return SharedViolations(self.log, self.instance, session, self.size)

    def __iter__(self) -> Iterator[Violation]:
        found = []
        for row in self.log.violations(self.session, self.size):
            data = json.loads(row.data)
            found.append(
                Violation(
                    data["operation_id"],
                    data["method"],
                    data["path"],
                    data["status"],
                    tuple(data["problems"]),
                    row.instance,
                )
            )
        return iter(found)

    def __len__(self) -> int:
        return self.log.count_violations(self.session)


def recording(settings: Settings) -> tuple[Journal, Violations]:
    """The default state's journal and violations; each session's come from them (``sibling``).

    In a shared state both are the shared log's (``storage.shared_log``), naming this process as
    ``instance_name`` says; otherwise both are this process's alone, in memory.
    """
    budget = Budget(settings.journal_mb * 1024 * 1024)  # shared by every session's journal
    shared = open_log(settings)
    if shared is None:
        return Journal(budget=budget), Violations()
    instance = instance_name(settings)
    return SharedJournal(Recorder(shared, instance, budget), None), SharedViolations(shared, instance, None)


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
        shares this one's byte budget; in a shared state, both are the session's rows in the shared log)."""
        return replace(
            self,
            store=store,
            **operations(store, self.spec),
            journal=journal if journal is not None else self.journal.sibling(session),
            chaos=chaos,
            violations=violations if violations is not None else self.violations.sibling(session),
            session=session,
        )


def current_mock() -> Mock:
    """The ``Mock`` of the app handling the current request."""
    return current_app.extensions["mockserver"]  # type: ignore[no-any-return]
