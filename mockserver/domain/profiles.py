"""The access-profile rules (docs/behaviour.md), as plain functions over the store.

Bodies arrive already checked against the spec. Every rule is checked before anything is stored,
and a change is committed by swapping in a new record, so a refused request changes nothing.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mockserver.domain.history import audit, existing_profile, page_bounds, record_version
from mockserver.domain.store import Record, State, Store
from mockserver.domain.timeutil import format_duration, format_timestamp, parse_duration, parse_timestamp
from mockserver.spec.document import Spec
from mockserver.spec.errors import BadRequest, Conflict, NotFound

# A budget's id only selects the stored budget to keep; its scope follows from where it is placed.
BUDGET_REFERENCE_FIELDS = ("id", "scope")
# The white space trimmed from names: Unicode White_Space, as Go's strings.TrimSpace trims it. The
# spec's name pattern names the same characters (Python's str.strip would also trim U+001C..U+001F).
NAME_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


@dataclass(frozen=True)
class Limits:
    """The limits the rules need, read from the spec once."""

    name_max_length: int
    rotation_min_ns: int
    rotation_max_ns: int

    @classmethod
    def from_spec(cls, spec: Spec) -> Limits:
        return cls(
            name_max_length=spec.limit("CreateAccessProfileRequest", "name", "maxLength"),
            rotation_min_ns=spec.keyword("RotationInterval", "minimum"),
            rotation_max_ns=spec.keyword("RotationInterval", "maximum"),
        )


class Profiles:
    """Operations on access profiles. Each public method is one operation of the API."""

    def __init__(self, store: Store, spec: Spec) -> None:
        self.store = store
        self.spec = spec
        self.limits = Limits.from_spec(spec)

    # -- reads ---------------------------------------------------------------------------------

    def list(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """One page of profiles matching the filters, in ascending id order."""
        limit, offset = page_bounds(query, self.spec.page_size)
        search = (query.get("search") or "").lower()
        tags = {t.strip() for t in (query.get("tags") or "").split(",") if t.strip()}
        is_active = query.get("is_active")

        def matches(p: Record) -> bool:
            if is_active is not None and p["is_active"] != is_active:
                return False
            if tags and not tags.intersection(p["tags"]):
                return False
            if search:
                text = p["name"].lower() + "\n" + (p["description"] or "").lower()
                if search not in text:
                    return False
            return True

        with self.store.atomic() as state:
            if is_active is None and not tags and not search:
                # No filter: a page costs its own size, whatever the store holds (ids are in order).
                total = len(state.profiles)
                page = list(itertools.islice(state.profiles.values(), offset, offset + limit))
            else:
                found = [p for p in state.profiles.values() if matches(p)]
                total = len(found)
                page = found[offset : offset + limit]
        return {
            "access_profiles": page,
            "count": len(page),
            "total_count": total,
            "limit": limit,
            "offset": offset,
        }

    def get(self, profile_id: int) -> dict[str, Any]:
        """The profile, its role attachments and the number of users holding a copy."""
        with self.store.atomic() as state:
            profile = existing_profile(state, profile_id)
            roles = [a for a in state.role_attachments if a["access_profile_id"] == profile_id]
            copies = sum(1 for c in state.user_copies if c["parent_profile_id"] == profile_id)
        return {"access_profile": profile, "roles": roles, "user_count": copies}

    # -- writes --------------------------------------------------------------------------------

    def create(self, body: Mapping[str, Any], actor: str) -> Record:
        body = self.spec.project(body, self.spec.schema("CreateAccessProfileRequest"))
        return self._insert(body, body.get("description"), actor, "create")

    def update(self, profile_id: int, body: Mapping[str, Any], actor: str) -> Record:
        """Partial update: only the fields present in the body change."""
        body = self.spec.project(body, self.spec.schema("UpdateAccessProfileRequest"))
        now = self.store.clock()
        with self.store.write() as state:
            old = existing_profile(state, profile_id)
            new = dict(old)  # records are values: a change replaces a field, never edits it in place
            # Every rule is checked before any id is handed out, so a refused update changes nothing.
            if "name" in body:
                new["name"] = self._name(body["name"])
            if "provider_configs" in body:
                _unique_provider_names(body["provider_configs"])
            self._reschedule(new, body, now)
            if new["name"] != old["name"]:
                _name_free(state, new["name"], besides=profile_id)
            if "description" in body:
                new["description"] = body["description"]
            if "tags" in body:
                new["tags"] = list(body["tags"])
            if "provider_configs" in body:
                kept = {pc["provider_name"]: pc for pc in old["provider_configs"]}
                new["provider_configs"] = [
                    self._provider_config(state, pc, kept.pop(pc["provider_name"], None), now)
                    for pc in body["provider_configs"]
                ]
            if "budgets" in body:
                kept_budgets = {b["id"]: b for b in old["budgets"]}
                new["budgets"] = [self._budget(b, "total", kept_budgets, now) for b in body["budgets"]]
            if "rate_limit" in body:
                if body["rate_limit"] is None:
                    new.pop("rate_limit", None)
                else:
                    new["rate_limit"] = self._rate_limit(body["rate_limit"], old.get("rate_limit"))
            if body.get("calendar_aligned") is not None:
                new["calendar_aligned"] = body["calendar_aligned"]
            for key in ("mcp_tool_groups", "mcp_servers", "mcp_tool_overrides"):
                if key in body:
                    new[key] = copy.deepcopy(body[key])
            if new == old:
                return old
            new["version"] = old["version"] + 1
            new["updated_at"] = format_timestamp(now)
            state.put_profile(new)
            record_version(state, new, actor)
            audit(state, "update", profile_id, actor, now, old, new)
        return new

    def set_active(self, profile_id: int, active: bool, actor: str) -> Record:
        """Activate or deactivate; idempotent, and no version bump."""
        now = self.store.clock()
        with self.store.write() as state:
            old = existing_profile(state, profile_id)
            if old["is_active"] == active:
                return old
            new = {**old, "is_active": active, "updated_at": format_timestamp(now)}
            state.put_profile(new)
            audit(state, "activate" if active else "deactivate", profile_id, actor, now, old, new)
        return new

    def delete(self, profile_id: int, actor: str) -> None:
        now = self.store.clock()
        with self.store.write() as state:
            old = existing_profile(state, profile_id)
            if any(c["parent_profile_id"] == profile_id for c in state.user_copies):
                raise Conflict("Profile has active user copies; detach users first.", "profile_id")
            state.remove_profile(profile_id)
            state.role_attachments = tuple(a for a in state.role_attachments if a["access_profile_id"] != profile_id)
            audit(state, "delete", profile_id, actor, now, old, None)

    def clone(self, source_id: int, body: Mapping[str, Any], actor: str) -> Record:
        """A new profile from the source's template fields, with fresh ids and zero usage."""
        body = self.spec.project(body, self.spec.schema("CloneProfileRequest"))
        with self.store.atomic() as state:
            source = state.profiles.get(source_id)
            if source is None:
                raise NotFound("Source profile not found", "profile_id")
            # The template is what a client could have sent to create the source; the schedule restarts.
            template = self.spec.project(source, self.spec.schema("CreateAccessProfileRequest"))
            template.pop("next_rotation_at", None)
            template["name"] = body["name"]
            description = body.get("description", source["description"])
            return self._insert(template, description, actor, "clone", {"source_profile_id": source_id})

    def _insert(
        self,
        body: Mapping[str, Any],
        description: str | None,
        actor: str,
        action: str,
        metadata: dict[str, Any] | None = None,
    ) -> Record:
        """Store a new profile built from a create body (checked in the order of decision 2)."""
        now = self.store.clock()
        name = self._name(body["name"])
        _unique_provider_names(body.get("provider_configs", []))
        interval = self._interval(body.get("auto_rotation_interval"))
        next_rotation = self._first_rotation(body, interval, now)
        with self.store.write() as state:
            _name_free(state, name)
            profile_id = state.next_id("profile")
            record: Record = {
                "id": profile_id,
                "name": name,
                "description": description,
                "is_active": True,
                "version": 1,
                "tags": list(body.get("tags", [])),
                "provider_configs": [
                    self._provider_config(state, pc, None, now) for pc in body.get("provider_configs", [])
                ],
                "budgets": [self._budget(b, "total", {}, now) for b in body.get("budgets", [])],
            }
            if "rate_limit" in body:
                record["rate_limit"] = self._rate_limit(body["rate_limit"], None)
            record["calendar_aligned"] = body.get("calendar_aligned", False)
            record["auto_rotation_interval"] = interval
            if next_rotation is not None:
                record["next_rotation_at"] = format_timestamp(next_rotation)
            for key in ("mcp_tool_groups", "mcp_servers", "mcp_tool_overrides"):
                record[key] = copy.deepcopy(body.get(key, []))
            record["created_at"] = record["updated_at"] = format_timestamp(now)
            state.put_profile(record)
            record_version(state, record, actor)
            audit(state, action, profile_id, actor, now, None, record, metadata)
        return record

    # -- building parts ------------------------------------------------------------------------

    def _name(self, raw: str) -> str:
        name = raw.strip(NAME_SPACE)
        if not name:
            raise BadRequest("name: expected a non-blank name", "name")
        if len(name) > self.limits.name_max_length:
            raise BadRequest(
                f"name: expected at most {self.limits.name_max_length} characters after trimming, got {len(name)}",
                "name",
            )
        return name

    def _budget(self, data: Mapping[str, Any], scope: str, kept: dict[str, Record], now: datetime) -> Record:
        """A stored budget from a ``BudgetInput``. One sent with the id of a budget in ``kept`` keeps
        that budget's id, usage and last reset (each stored budget at most once)."""
        budget_id = data.get("id")
        old = kept.pop(budget_id, None) if isinstance(budget_id, str) else None
        return {
            "id": old["id"] if old else self.store.new_uuid(),
            **{k: copy.deepcopy(v) for k, v in data.items() if k not in BUDGET_REFERENCE_FIELDS},
            "scope": scope,
            "current_usage": old["current_usage"] if old else 0,
            "last_reset": old["last_reset"] if old else format_timestamp(now),
        }

    def _rate_limit(self, data: Mapping[str, Any], old: Record | None) -> Record:
        """A stored rate limit from a ``RateLimitInput``; replacing one keeps its id and counters."""
        return {
            "id": old["id"] if old else self.store.new_uuid(),
            **data,
            "token_current_usage": old["token_current_usage"] if old else 0,
            "request_current_usage": old["request_current_usage"] if old else 0,
        }

    def _provider_config(self, state: State, data: Mapping[str, Any], old: Record | None, now: datetime) -> Record:
        """A stored provider config; ``old`` is the stored config with the same provider, if any."""
        name = data["provider_name"]
        kept = {b["id"]: b for b in old["budgets"]} if old else {}
        record: Record = {
            "id": old["id"] if old else state.next_id("provider_config"),
            "provider_name": name,
            "all_models_allowed": data.get("all_models_allowed", False),
            "allowed_models": list(data.get("allowed_models", [])),
            "budgets": [self._budget(b, f"provider:{name}", kept, now) for b in data.get("budgets", [])],
        }
        if "rate_limit" in data:
            record["rate_limit"] = self._rate_limit(data["rate_limit"], old.get("rate_limit") if old else None)
        return record

    # -- rotation (decision 19) ----------------------------------------------------------------

    def _interval(self, value: str | int | None) -> int:
        """A rotation interval as nanoseconds; None, "" and 0 mean off."""
        if value is None or value == "" or value == 0:
            return 0
        try:
            ns = parse_duration(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise BadRequest(f"auto_rotation_interval: {exc}", "auto_rotation_interval") from None
        if ns == 0:
            return 0
        low, high = self.limits.rotation_min_ns, self.limits.rotation_max_ns
        if not low <= ns <= high:
            raise BadRequest(
                f"auto_rotation_interval: expected between {format_duration(low)} and "
                f"{format_duration(high)}, got {value!r} ({format_duration(ns)})",
                "auto_rotation_interval",
            )
        return ns

    def _first_rotation(self, body: Mapping[str, Any], interval: int, now: datetime) -> datetime | None:
        if "next_rotation_at" not in body:
            return _after(now, interval) if interval else None
        if not interval:
            raise BadRequest("next_rotation_at: needs auto_rotation_interval; rotation is off", "next_rotation_at")
        return _future(body["next_rotation_at"], now)

    def _reschedule(self, new: Record, body: Mapping[str, Any], now: datetime) -> None:
        """Apply ``auto_rotation_interval`` / ``next_rotation_at`` of an update to ``new``."""
        if body.get("auto_rotation_interval") is not None:
            interval = self._interval(body["auto_rotation_interval"])
            if interval != new["auto_rotation_interval"]:
                new["auto_rotation_interval"] = interval
                new.pop("next_rotation_at", None)
                if interval:
                    new["next_rotation_at"] = format_timestamp(_after(now, interval))
        if "next_rotation_at" not in body:
            return
        if body["next_rotation_at"] is None:
            if new["auto_rotation_interval"]:
                raise BadRequest(
                    "next_rotation_at: can be cleared only while rotation is off; "
                    'send auto_rotation_interval: "" to turn it off',
                    "next_rotation_at",
                )
            new.pop("next_rotation_at", None)
            return
        if not new["auto_rotation_interval"]:
            raise BadRequest("next_rotation_at: needs auto_rotation_interval; rotation is off", "next_rotation_at")
        new["next_rotation_at"] = format_timestamp(_future(body["next_rotation_at"], now))


# -- helpers over the state --------------------------------------------------------------------


def _name_free(state: State, name: str, besides: int | None = None) -> None:
    other = state.names.get(name)
    if other is not None and other != besides:
        raise Conflict(f"an access profile named {name!r} already exists (id {other})", "name")


def _unique_provider_names(configs: list[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, pc in enumerate(configs):
        if pc["provider_name"] in seen:
            raise BadRequest(
                f"provider_configs[{i}].provider_name: {pc['provider_name']!r} appears more than once; "
                "send one config per provider",
                f"provider_configs[{i}].provider_name",
            )
        seen.add(pc["provider_name"])


def _after(now: datetime, ns: int) -> datetime:
    return now + timedelta(microseconds=ns // 1000)


def _future(text: str, now: datetime) -> datetime:
    try:
        when = parse_timestamp(text)
    except ValueError as exc:
        raise BadRequest(f"next_rotation_at: {exc}", "next_rotation_at") from None
    if when <= now:
        raise BadRequest(
            f"next_rotation_at: expected a time in the future, got {text} (now is {format_timestamp(now)})",
            "next_rotation_at",
        )
    return when
