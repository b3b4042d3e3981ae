"""Users' copies of profiles (docs/behaviour.md, decisions 15, 16 and 18).

A copy holds the template's governance fields with its own ids and usage counters, and the
virtual keys it produced. Each copied budget remembers the template budget it came from, so
propagation can keep its usage and any override.
"""

from __future__ import annotations

import copy as copying
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from mockserver.domain.history import audit, existing_profile
from mockserver.domain.store import Record, State, Store
from mockserver.domain.timeutil import format_timestamp, parse_timestamp
from mockserver.spec.document import Spec
from mockserver.spec.errors import Conflict, NotFound

COPY_NOT_FOUND = "User access profile not found"
KEY_NOT_FOUND = "Virtual key not found for this user"
KEY_PREFIX = "sk-bf-"
# Fields of a copied budget that belong to the copy: the usage and the user's override.
_OVERRIDE_FIELDS = ("override_amount", "override_mode", "override_cycles_remaining")

NewId = Callable[[], str]


def masked(value: str) -> str:
    """A virtual key as listings show it: the prefix and the last four characters."""
    return f"{KEY_PREFIX}****{value[-4:]}"


class Copies:
    """Operations on users' copies, their budget overrides and virtual keys."""

    def __init__(self, store: Store, spec: Spec) -> None:
        self.store = store
        self.spec = spec

    # -- reads ---------------------------------------------------------------------------------

    def list_for_user(self, user_id: str) -> dict[str, Any]:
        with self.store.atomic() as state:
            copies = [c for c in state.user_copies if c["user_id"] == user_id]
            keys = {k["id"]: k for k in state.virtual_keys}
        return {"access_profiles": [public_view(c, keys) for c in sorted(copies, key=lambda c: c["id"])]}

    def keys_of(self, user_id: str) -> dict[str, Any]:
        """Every key of the user, from copies, extra and standalone, in the order they were issued."""
        with self.store.atomic() as state:
            keys = [k for k in state.virtual_keys if k["user_id"] == user_id]
        return {"virtual_keys": [key_view(k) for k in sorted(keys, key=_key_number)]}

    def creation_policy(self, user_id: str | None) -> dict[str, Any]:
        """The profile that would govern a key the caller creates (docs/behaviour.md, decision 24)."""
        if user_id is None:
            return {"has_access_profile": False}
        now = self.store.clock()
        with self.store.atomic() as state:
            governing = governing_copy(state, user_id, now)
        if governing is None:
            return {"has_access_profile": False}
        return {"has_access_profile": True, "profile_name": governing["name"]}

    # -- writes --------------------------------------------------------------------------------

    def detach(self, user_id: str, copy_id: int, actor: str) -> dict[str, Any]:
        """Remove a copy and every virtual key it produced."""
        now = self.store.clock()
        with self.store.write() as state:
            found = _copy_of(state, user_id, copy_id)
            state.user_copies = tuple(c for c in state.user_copies if c["id"] != copy_id)
            last = not any(c["user_id"] == user_id for c in state.user_copies)
            # The copy's keys go with it; the user's extra keys go with the user's last copy.
            deleted = [k for k in state.virtual_keys if k["copy_id"] == copy_id or last and _is_extra(k, user_id)]
            gone = {k["id"] for k in deleted}
            state.virtual_keys = tuple(k for k in state.virtual_keys if k["id"] not in gone)
            names = [k["name"] for k in deleted]
            audit(
                state,
                "detach_user",
                found["parent_profile_id"],
                actor,
                now,
                before=_audit_view(found),
                metadata={"copy_id": copy_id, "deleted_vk_names": names},
                user_id=user_id,
            )
        return {"message": "User access profile detached", "deleted_vk_names": names, "deleted_vk_count": len(names)}

    def propagate(self, profile_id: int, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Copy the chosen template fields to the targeted copies (decision 16)."""
        fields = list(dict.fromkeys(body["fields"]))
        user_ids = list(dict.fromkeys(body.get("user_ids") or []))
        group_ids = set(body.get("group_ids") or [])
        dry_run = bool(body.get("dry_run", False))
        reset_usage = bool(body.get("reset_usage", False))
        now = self.store.clock()
        with self.store.write() as state:
            template = existing_profile(state, profile_id)
            holders = [c for c in state.user_copies if c["parent_profile_id"] == profile_id]
            if user_ids or group_ids:
                wanted = set(user_ids) | {
                    u["id"] for u in state.users.values() if group_ids.intersection(u.get("group_ids", []))
                }
                targets = [c for c in holders if c["user_id"] in wanted]
            else:
                targets = holders
            holding = {c["user_id"] for c in holders}
            skipped = sum(1 for u in user_ids if u not in holding)
            if not dry_run and targets:
                changed = {
                    c["id"]: {
                        **c,
                        "governance": copied_governance(
                            template, self.store.new_uuid, now, c["governance"], fields, reset_usage
                        ),
                    }
                    for c in targets
                }
                state.user_copies = tuple(changed.get(c["id"], c) for c in state.user_copies)
            if not dry_run:
                audit(
                    state,
                    "propagate",
                    profile_id,
                    actor,
                    now,
                    metadata={
                        "fields": fields,
                        "user_ids": [c["user_id"] for c in targets],
                        "reset_usage": reset_usage,
                    },
                )
        return {
            "affected_users": len(targets),
            "failed_users": 0,
            "skipped_users": skipped,
            "user_ids": [c["user_id"] for c in targets],
            "fields": fields,
            "applied": not dry_run,
            "vk_sync_errors": [],
        }

    def set_override(
        self, user_id: str, copy_id: int, budget_id: str, body: Mapping[str, Any], actor: str
    ) -> dict[str, Any]:
        """Add extra budget to one budget of a user's copy (decision 18)."""
        cycles = body["cycles"] if body["mode"] == "cycles" else 0
        override = {
            "override_amount": body["amount"],
            "override_mode": body["mode"],
            "override_cycles_remaining": cycles,
        }
        return self._change_budget(user_id, copy_id, budget_id, actor, "override_budget", override)

    def delete_override(self, user_id: str, copy_id: int, budget_id: str, actor: str) -> dict[str, Any]:
        """Remove a budget override; without one, nothing changes and the answer is the budget."""
        return self._change_budget(user_id, copy_id, budget_id, actor, "remove_budget_override", None)

    def add_key(self, user_id: str, body: Mapping[str, Any] | None, actor: str) -> dict[str, Any]:
        """Issue one more virtual key to a user who holds a copy (addUserVirtualKey, and the deprecated #20)."""
        body = body or {}
        now = self.store.clock()
        with self.store.write() as state:
            if not any(c["user_id"] == user_id for c in state.user_copies):
                raise NotFound("User has no access profiles", "user_id")
            taken = {k["name"] for k in state.virtual_keys}
            name = body.get("name")
            if name is not None and name in taken:
                raise Conflict(f"a virtual key named {name!r} already exists among user-issued keys", "name")
            key = new_key(state, self.store.new_uuid, user_id, None, name, body.get("description"))
            audit(state, "add_virtual_key", None, actor, now, metadata={"vk_id": key["id"]}, user_id=user_id)
        return {"virtual_key": {"id": key["id"], "name": key["name"], "value": key["value"]}}

    def delete_key(self, user_id: str, key_id: str, actor: str) -> dict[str, Any]:
        now = self.store.clock()
        with self.store.write() as state:
            key = next((k for k in state.virtual_keys if k["id"] == key_id and k["user_id"] == user_id), None)
            if key is None:
                raise NotFound(KEY_NOT_FOUND, "vk_id")
            state.virtual_keys = tuple(k for k in state.virtual_keys if k["id"] != key_id)
            parent = None
            if key["copy_id"] is not None:
                state.user_copies = tuple(
                    {**c, "virtual_key_ids": [i for i in c["virtual_key_ids"] if i != key_id]}
                    if c["id"] == key["copy_id"]
                    else c
                    for c in state.user_copies
                )
                parent = next((c["parent_profile_id"] for c in state.user_copies if c["id"] == key["copy_id"]), None)
            audit(state, "delete_virtual_key", parent, actor, now, metadata={"vk_id": key_id}, user_id=user_id)
        return {"message": "Virtual key deleted"}

    def _change_budget(
        self, user_id: str, copy_id: int, budget_id: str, actor: str, action: str, override: dict[str, Any] | None
    ) -> dict[str, Any]:
        now = self.store.clock()
        with self.store.write() as state:
            found = _copy_of(state, user_id, copy_id)
            governance = copying.deepcopy(found["governance"])
            budget = next((b for b in _budgets(governance) if b["id"] == budget_id), None)
            if budget is None:
                raise NotFound("Budget not found on this user's copy", "budget_id")
            before = dict(budget)
            for key in _OVERRIDE_FIELDS:
                budget.pop(key, None)
            if override is not None:
                budget.update(override)
            if budget != before:
                changed = {**found, "governance": governance}
                state.user_copies = tuple(changed if c["id"] == copy_id else c for c in state.user_copies)
                audit(
                    state,
                    action,
                    found["parent_profile_id"],
                    actor,
                    now,
                    before=before,
                    after=budget,
                    metadata={"copy_id": copy_id, "budget_id": budget_id},
                    user_id=user_id,
                )
        return {"budget": self.budget_view(budget)}

    def budget_view(self, budget: Record) -> Record:
        """A copy's budget as the API shows it: the Budget fields, the override, the effective limit."""
        view: Record = self.spec.project(budget, self.spec.schema("Budget"))
        extra = budget.get("override_amount")
        for key in _OVERRIDE_FIELDS:
            if key in budget:
                view[key] = budget[key]
        view["effective_max_limit"] = budget["max_limit"] + extra if extra is not None else budget["max_limit"]
        return view


# -- building copies (also used when fixtures are loaded) --------------------------------------------


def new_copy(state: State, new_id: NewId, user_id: str, profile: Record, now: datetime) -> Record:
    """A fresh copy of ``profile`` for a user, with one virtual key; stored in ``state``."""
    copy_id = state.next_id("user_copy")
    base = f"{user_id}-{_slug(profile['name'])}"
    key = new_key(state, new_id, user_id, copy_id, None, None, base=base)
    record: Record = {
        "id": copy_id,
        "user_id": user_id,
        "parent_profile_id": profile["id"],
        "name": profile["name"],
        "is_active": True,
        "expires_at": None,
        "virtual_key_ids": [key["id"]],
        "governance": copied_governance(profile, new_id, now),
        "created_at": format_timestamp(now),
    }
    state.user_copies = (*state.user_copies, record)
    return record


def new_key(
    state: State,
    new_id: NewId,
    user_id: str,
    copy_id: int | None,
    name: str | None,
    description: str | None,
    base: str | None = None,
    managed: bool = True,
) -> Record:
    """A new virtual key, stored in ``state``; without a name, one unique among user-issued keys.

    Keys issued through access profiles (a copy's, and extra keys minted for the user) are
    ``managed``: the user's profiles govern them. A standalone key, assigned directly, is not.
    """
    number = state.next_id("virtual_key")
    if name is None:
        taken = {k["name"] for k in state.virtual_keys}
        stem = base or f"{user_id}-key-{number}"
        name, suffix = stem, 2
        while name in taken:
            name, suffix = f"{stem}-{suffix}", suffix + 1
    key: Record = {
        "id": f"vk-{number}",
        "user_id": user_id,
        "copy_id": copy_id,
        "name": name,
        "description": description,
        "value": KEY_PREFIX + new_id().replace("-", ""),
        "is_access_profile_managed": managed,
    }
    state.virtual_keys = (*state.virtual_keys, key)
    return key


def copied_governance(
    template: Record,
    new_id: NewId,
    now: datetime,
    old: Record | None = None,
    fields: Iterable[str] | None = None,
    reset_usage: bool = False,
) -> Record:
    """The governance fields of a copy after copying ``fields`` (all by default) from the template.

    Budgets and rate limits that already exist on the copy (matched by the template budget they
    came from, and by provider) keep their ids, their usage unless ``reset_usage``, and always
    their overrides.
    """
    old = old or {}
    result = copying.deepcopy(old) if old else {}
    chosen = set(fields) if fields is not None else None
    usage_of = {b["template_budget_id"]: b for b in _budgets(old)}
    for field in ("provider_configs", "budgets", "rate_limit", "mcp_tool_groups", "mcp_servers", "mcp_tool_overrides"):
        if chosen is not None and field not in chosen:
            continue
        if field == "budgets":
            result["budgets"] = [_budget(b, usage_of, new_id, now, reset_usage) for b in template["budgets"]]
        elif field == "provider_configs":
            kept = {pc["provider_name"]: pc for pc in old.get("provider_configs", [])}
            result["provider_configs"] = [
                {
                    **{k: copying.deepcopy(v) for k, v in pc.items() if k not in ("budgets", "rate_limit")},
                    "budgets": [_budget(b, usage_of, new_id, now, reset_usage) for b in pc["budgets"]],
                    **(
                        {
                            "rate_limit": _rate_limit(
                                pc["rate_limit"], kept.get(pc["provider_name"], {}), new_id, reset_usage
                            )
                        }
                        if "rate_limit" in pc
                        else {}
                    ),
                }
                for pc in template["provider_configs"]
            ]
        elif field == "rate_limit":
            result.pop("rate_limit", None)
            if "rate_limit" in template:
                result["rate_limit"] = _rate_limit(template["rate_limit"], old, new_id, reset_usage)
        else:
            result[field] = copying.deepcopy(template[field])
    return result


def public_view(copy: Record, keys: Mapping[str, Record]) -> Record:
    """A copy as the UserAccessProfile schema shows it, with masked key values."""
    return {
        "id": copy["id"],
        "user_id": copy["user_id"],
        "parent_profile_id": copy["parent_profile_id"],
        "name": copy["name"],
        "is_active": copy["is_active"],
        "expires_at": copy["expires_at"],
        "virtual_key_ids": list(copy["virtual_key_ids"]),
        "virtual_key_values": {i: masked(keys[i]["value"]) for i in copy["virtual_key_ids"] if i in keys},
    }


def key_view(key: Record) -> Record:
    """A key as the user's key list shows it (UserVirtualKey), its value masked."""
    return {
        "id": key["id"],
        "name": key["name"],
        "value": masked(key["value"]),
        "is_access_profile_managed": key["is_access_profile_managed"],
    }


def governing_copy(state: State, user_id: str, now: datetime) -> Record | None:
    """The user's copy that would govern a key the user creates, or None (decision 24).

    Only active copies that have not expired qualify. The best-ranked one is a copy of a profile
    that is the default of one of the user's roles, then the oldest copy.
    """
    defaults = {
        a["access_profile_id"]
        for a in state.role_attachments
        if a["is_default"] and a["role_id"] in state.users.get(user_id, {}).get("role_ids", ())
    }
    live = [
        c
        for c in state.user_copies
        if c["user_id"] == user_id
        and c["is_active"]
        and (c["expires_at"] is None or parse_timestamp(c["expires_at"]) > now)
    ]
    return min(live, key=lambda c: (c["parent_profile_id"] not in defaults, c["id"]), default=None)


def _is_extra(key: Record, user_id: str) -> bool:
    """An extra key of the user: issued through access profiles, but by no copy."""
    return key["user_id"] == user_id and key["copy_id"] is None and bool(key["is_access_profile_managed"])


def _key_number(key: Record) -> int:
    return int(str(key["id"]).rpartition("-")[2])


def _budget(template: Record, usage_of: Mapping[str, Record], new_id: NewId, now: datetime, reset: bool) -> Record:
    old = usage_of.get(template["id"])
    budget = {
        "id": old["id"] if old else new_id(),
        "template_budget_id": template["id"],
        **{k: copying.deepcopy(v) for k, v in template.items() if k not in ("id", "current_usage", "last_reset")},
        "current_usage": old["current_usage"] if old and not reset else 0,
        "last_reset": old["last_reset"] if old and not reset else format_timestamp(now),
    }
    for key in _OVERRIDE_FIELDS:
        if old and key in old:
            budget[key] = old[key]
    return budget


def _rate_limit(template: Record, holder: Mapping[str, Any], new_id: NewId, reset: bool) -> Record:
    old = holder.get("rate_limit")
    limit = {k: v for k, v in template.items() if not k.endswith("_current_usage") and k != "id"}
    return {
        "id": old["id"] if old else new_id(),
        **limit,
        "token_current_usage": old["token_current_usage"] if old and not reset else 0,
        "request_current_usage": old["request_current_usage"] if old and not reset else 0,
    }


def _budgets(governance: Mapping[str, Any]) -> list[Record]:
    """Every budget of a copy: the profile-level ones and those of each provider config."""
    return list(governance.get("budgets", [])) + [
        b for pc in governance.get("provider_configs", []) for b in pc["budgets"]
    ]


def _copy_of(state: State, user_id: str, copy_id: int) -> Record:
    found = next((c for c in state.user_copies if c["id"] == copy_id and c["user_id"] == user_id), None)
    if found is None:
        raise NotFound(COPY_NOT_FOUND, "profile_id")
    return found


def _audit_view(copy: Record) -> Record:
    return {k: v for k, v in copy.items() if k != "governance"}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "profile"
