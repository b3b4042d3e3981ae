"""One contract run's state: the profiles it owns, snapshots for the update checks, and its results.

Schemathesis hooks and checks are registered process-wide, so they find the run they serve with
``active()``; outside ``activate(...)`` they do nothing.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mockserver.contract.http import Answer, Http, Unreachable
from mockserver.contract.results import Results
from mockserver.contract.rules import UpdateLimits
from mockserver.contract.safety import Guard, Ownership, profile_collection, profile_id_of
from mockserver.spec.document import Operation, Spec, SpecError

# Canonical operationIds of the spec; deprecated aliases map to them through ``Operation.canonical_id``.
LIST, CREATE, GET, UPDATE, DELETE, CLONE, ATTACH_ROLES = (
    "listAccessProfiles",
    "createAccessProfile",
    "getAccessProfile",
    "updateAccessProfile",
    "deleteAccessProfile",
    "cloneAccessProfile",
    "attachRolesToAccessProfile",
)
_SNAPSHOTS_KEPT = 512
_CLEANUP_PAGES = 100


@dataclass(frozen=True)
class Cleanup:
    """What the end of a run removed, and what it could not."""

    deleted: tuple[int, ...]
    left: tuple[str, ...]


class Session:
    """The state of one contract run against one API."""

    def __init__(self, spec: Spec, http: Http, ownership: Ownership, *, read_only: bool = False) -> None:
        self.spec = spec
        self.http = http
        self.ownership = ownership
        self.read_only = read_only
        self.limits = UpdateLimits.from_spec(spec)
        self.update_fields = frozenset(spec.schema("UpdateAccessProfileRequest").get("properties", {}))
        self.canonical_collection, self.collections = _collections(spec)
        self.results = Results()
        # Set by the runner: the guard every request passes, asked before a generated case is sent.
        self.guard: Guard | None = None
        self.refusals: list[str] = []
        self.not_sent: Counter[str] = Counter()
        self._operations = {(op.method, op.path): op for op in spec.operations.values()}
        self._snapshots: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._done: set[str] = set()
        self._anchor: int | None = None
        self._lock = threading.RLock()

    # -- what a request is -----------------------------------------------------------------------

    def operation(self, method: str, template: str) -> Operation | None:
        """The spec operation of a method and path template (None for a method the path lacks)."""
        return self._operations.get((method.upper(), template))

    def collection_of(self, template: str) -> str | None:
        """The profile collection a path template lies in, if any."""
        return collection_of(template, self.collections)

    def once(self, key: str) -> bool:
        """True the first time ``key`` is asked for in this run (probes that run once)."""
        with self._lock:
            if key in self._done:
                return False
            self._done.add(key)
            return True

    def stop(self) -> None:
        """Ctrl-C or SIGTERM arrived: the run is interrupted, and no case of it may leave from now on."""
        self.results.interrupted = True

    @property
    def stopping(self) -> bool:
        return self.results.interrupted

    def refuse(self, reason: str) -> None:
        """Record a request the guard stopped on its way out: a defect of the run, which should not have made it."""
        with self._lock:
            self.refusals.append(reason)

    def leave_out(self, reason: str) -> None:
        """Record a generated case left out because the guard would refuse it (not an error)."""
        with self._lock:
            self.not_sent[reason] += 1

    # -- the run's own profiles ------------------------------------------------------------------

    def create(self, collection: str, body: dict[str, Any]) -> Answer:
        """POST a profile; a created one becomes the run's own."""
        answer = self.http.request("POST", collection, body={**body, "name": self.ownership.name(body["name"])})
        profile = answer.profile()
        if answer.status == 201 and profile is not None and isinstance(profile.get("id"), int):
            self.ownership.adopt(profile["id"])
        return answer

    def anchor(self, collection: str) -> int:
        """A live profile of this run, created when there is none.

        Changes aimed at profiles the run did not create go to it instead. It has a rate limit,
        budgets, tags and a provider config, so an update has something to keep or change.
        """
        with self._lock:
            if self._anchor is not None and self.ownership.is_live(self._anchor):
                return self._anchor
            answer = self.create(
                collection,
                {
                    "name": f"anchor-{len(self.ownership.created()) + 1}",
                    "description": "Created by mockserver contract; deleted when the run ends.",
                    "tags": ["mockserver-contract", "anchor"],
                    "provider_configs": [{"provider_name": "openai", "all_models_allowed": True}],
                    "budgets": [{"max_limit": 100, "reset_duration": "1M"}],
                    "rate_limit": {"request_max_limit": 600, "request_reset_duration": "1h"},
                },
            )
            profile = answer.profile()
            if answer.status != 201 or profile is None:
                raise AnchorError(f"could not create a profile for the run at POST {collection}: {answer.describe()}")
            self._anchor = int(profile["id"])
            return self._anchor

    def remember_before(self, case_id: str, collection: str, value: Any) -> None:
        """Keep the profile as it is before an update, for the checks that compare."""
        profile_id = profile_id_of(value)
        if profile_id is None:
            return
        profile = self.http.request("GET", f"{collection}/{profile_id}").profile()
        with self._lock:
            self._snapshots[case_id] = profile
            while len(self._snapshots) > _SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)

    def before(self, case_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._snapshots.get(case_id)

    def forget(self) -> None:
        """The in-process API was reset: the run owns nothing any more."""
        with self._lock:
            self.ownership.forget()
            self._snapshots.clear()
            self._anchor = None

    # -- the end of a run ------------------------------------------------------------------------

    def cleanup(self) -> Cleanup:
        """Delete every profile this run created: those it saw created and those named with its prefix."""
        if self.read_only:
            return Cleanup((), ())
        return remove_owned(self.http, self.ownership, self.canonical_collection, self.spec.page_size.maximum)


def remove_owned(http: Http, ownership: Ownership, collection: str, limit: int) -> Cleanup:
    """Delete every profile a run created: those it saw created and those named with its prefix.

    ``collection`` is the canonical profile collection; ``limit`` is the largest page a list answers
    (the spec's page size maximum); a 404 counts as already gone.
    """
    left: list[str] = []
    try:
        for profile_id in _marked(http, ownership, collection, limit):
            ownership.adopt(profile_id)  # named with this run's own prefix, so created by it
    except Unreachable as exc:
        left.append(f"could not list this run's profiles: {exc}")
    deleted: list[int] = []
    for profile_id in ownership.live():
        try:
            answer = http.request("DELETE", f"{collection}/{profile_id}")
        except Unreachable as exc:
            left.append(f"profile {profile_id}: {exc}")
            continue
        if 200 <= answer.status < 300 or answer.status == 404:
            ownership.release(profile_id)
            if answer.status != 404:
                deleted.append(profile_id)
        else:
            left.append(f"profile {profile_id}: DELETE answered {answer.describe()}")
    return Cleanup(tuple(deleted), tuple(left))


def _marked(http: Http, ownership: Ownership, collection: str, limit: int) -> Iterator[int]:
    """Ids of the profiles whose name carries the run's prefix, read ``limit`` at a time."""
    offset = 0
    for _ in range(_CLEANUP_PAGES):
        query = {"search": ownership.prefix, "limit": limit, "offset": offset}
        page = http.request("GET", collection, query=query).body
        items = page.get("access_profiles") if isinstance(page, dict) else None
        if not isinstance(items, list) or not items:
            return
        for item in items:
            if isinstance(item, dict) and ownership.marks(item.get("name")) and isinstance(item.get("id"), int):
                yield item["id"]
        offset += len(items)
        total = page.get("total_count")
        if isinstance(total, int) and offset >= total:
            return


class AnchorError(Exception):
    """The run could not create a profile of its own, so it cannot test changes safely."""


_active: Session | None = None


@contextmanager
def activate(session: Session) -> Iterator[Session]:
    """Make ``session`` the one the hooks and checks serve while the block runs."""
    global _active
    previous, _active = _active, session
    try:
        yield session
    finally:
        _active = previous


def active() -> Session | None:
    """The session of the run in progress, if any."""
    return _active


def collection_of(template: str, collections: tuple[str, ...]) -> str | None:
    """The one of ``collections`` that a path template is or lies below, if any."""
    for collection in collections:
        if template == collection or template.startswith(collection + "/"):
            return collection
    return None


def profile_collections(spec: Spec) -> tuple[str, ...]:
    """The paths under which profiles are addressed by id, canonical first."""
    return _collections(spec)[1]


def _collections(spec: Spec) -> tuple[str, tuple[str, ...]]:
    """(canonical collection, all collections): the paths under which profiles are addressed by id."""
    found: dict[str, bool] = {}
    for op in spec.operations.values():
        head = profile_collection(op.path)
        if head is not None:
            found[head] = found.get(head, False) or not op.is_alias
    canonical = [path for path, is_canonical in found.items() if is_canonical]
    if not canonical:
        raise SpecError(f"{spec.source}: no operation addresses a profile by {{profile_id}}")
    return canonical[0], tuple(sorted(found, key=lambda path: (not found[path], path)))
