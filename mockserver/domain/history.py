"""Version history and the audit trail: how they are written, and the operations that read them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mockserver.domain.store import Record, State, Store
from mockserver.domain.timeutil import format_timestamp
from mockserver.spec import jsontext
from mockserver.spec.errors import NotFound

if TYPE_CHECKING:
    from mockserver.spec.document import PageSize


def page_bounds(query: Mapping[str, Any], sizes: PageSize) -> tuple[int, int]:
    """(limit, offset) of a list request: the spec's page sizes, offset at least 0 (decision 11)."""
    return sizes.limit(query.get("limit")), max(query.get("offset") or 0, 0)


def record_version(state: State, profile: Record, actor: str) -> None:
    """Append the profile as it is now to its version history."""
    state.history.add_version(
        {
            "id": state.next_id("version"),
            "access_profile_id": profile["id"],
            "version": profile["version"],
            "name": profile["name"],
            "description": profile["description"],
            "snapshot": jsontext.text(profile),
            "changed_by": actor,
            "created_at": profile["updated_at"],
        }
    )


def audit(
    state: State,
    action: str,
    profile_id: int | None,
    actor: str,
    now: datetime,
    before: Any = None,
    after: Any = None,
    metadata: dict[str, Any] | None = None,
    user_id: str | None = None,
) -> None:
    """Append one row to the audit trail."""

    def text(value: Any) -> str | None:
        return None if value is None else jsontext.text(value)

    state.history.add_audit(
        {
            "id": state.next_id("audit"),
            "access_profile_id": profile_id,
            "user_id": user_id,
            "actor": actor,
            "action": action,
            "previous_values": text(before),
            "new_values": text(after),
            "metadata": text(metadata),
            "created_at": format_timestamp(now),
        }
    )


def existing_profile(state: State, profile_id: int) -> Record:
    """The stored profile with this id; NotFound when there is none."""
    profile = state.profiles.get(profile_id)
    if profile is None:
        raise NotFound("Profile not found", "profile_id")
    return profile


class History:
    """The read operations on versions and audit rows."""

    def __init__(self, store: Store, page_size: PageSize) -> None:
        self.store = store
        self.page_size = page_size

    def versions(self, profile_id: int) -> dict[str, Any]:
        """Every version of a profile, oldest first."""
        # A deleted profile's history stays stored, but only the audit trail of all profiles shows it.
        with self.store.atomic() as state:
            existing_profile(state, profile_id)
            return {"versions": state.history.versions(profile_id)}

    def version(self, profile_id: int, number: int) -> dict[str, Any]:
        with self.store.atomic() as state:
            existing_profile(state, profile_id)
            row = state.history.version(profile_id, number)
        if row is None:
            raise NotFound("Version not found", "version")
        return {"version": row}

    def audit_logs(self, query: Mapping[str, Any], profile_id: int | None = None) -> dict[str, Any]:
        """Audit rows, newest first, filtered by profile, ``action`` and ``user_id``."""
        limit, offset = page_bounds(query, self.page_size)
        action = query.get("action") or None
        user_id = query.get("user_id") or None
        with self.store.atomic() as state:
            if profile_id is not None:
                existing_profile(state, profile_id)
            rows, total = state.history.audit_page(profile_id, action, user_id, limit, offset)
        return {"audit_logs": rows, "total_count": total}
