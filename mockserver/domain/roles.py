"""Attaching profiles to RBAC roles (docs/behaviour.md, decision 14)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.domain.copies import new_copy
from mockserver.domain.history import audit, existing_profile
from mockserver.domain.store import Record, Store
from mockserver.spec.errors import BadRequest, NotFound


class Roles:
    """Attach and detach operations."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def attach(self, profile_id: int, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Attach the profile to roles; with ``apply_to_existing``, give their members a copy."""
        role_ids = list(dict.fromkeys(body["role_ids"]))
        is_default = bool(body.get("is_default", False))
        apply = bool(body.get("apply_to_existing", False))
        now = self.store.clock()
        with self.store.write() as state:
            profile = existing_profile(state, profile_id)
            unknown = [
                f"role_ids[{body['role_ids'].index(r)}]: no role with id {r}" for r in role_ids if r not in state.roles
            ]
            if unknown:
                raise BadRequest("; ".join(unknown), "role_ids")
            attachments = list(state.role_attachments)
            for role_id in role_ids:
                if is_default:  # a role has one default profile at most
                    attachments = [
                        {**a, "is_default": False} if a["role_id"] == role_id and a["is_default"] else a
                        for a in attachments
                    ]
                current = next(
                    (
                        i
                        for i, a in enumerate(attachments)
                        if a["access_profile_id"] == profile_id and a["role_id"] == role_id
                    ),
                    None,
                )
                attachment: Record = {
                    "id": attachments[current]["id"] if current is not None else state.next_id("role_attachment"),
                    "access_profile_id": profile_id,
                    "role_id": role_id,
                    "role_name": state.roles[role_id]["name"],
                    "is_default": is_default,
                }
                if current is None:
                    attachments.append(attachment)
                else:
                    attachments[current] = attachment
            changed = tuple(attachments) != state.role_attachments
            state.role_attachments = tuple(attachments)
            applied = 0
            if apply:
                holders = {c["user_id"] for c in state.user_copies if c["parent_profile_id"] == profile_id}
                for role_id in role_ids:
                    for member in state.roles[role_id]["member_ids"]:
                        if member not in holders:
                            new_copy(state, self.store.new_uuid, member, profile, now)
                            holders.add(member)
                            applied += 1
            if changed or applied:
                audit(
                    state,
                    "attach_role",
                    profile_id,
                    actor,
                    now,
                    metadata={
                        "role_ids": role_ids,
                        "is_default": is_default,
                        "apply_to_existing": apply,
                        "users_applied": applied,
                    },
                )
        return {"message": "Roles attached", "users_applied": applied}

    def detach(self, profile_id: int, role_id: int, actor: str) -> dict[str, Any]:
        """Remove an attachment; copies already made stay."""
        now = self.store.clock()
        with self.store.write() as state:
            found = next(
                (a for a in state.role_attachments if a["access_profile_id"] == profile_id and a["role_id"] == role_id),
                None,
            )
            if found is None:
                raise NotFound("Role attachment not found", "role_id")
            state.role_attachments = tuple(a for a in state.role_attachments if a is not found)
            audit(state, "detach_role", profile_id, actor, now, before=found)
        return {"message": "Role detached"}
