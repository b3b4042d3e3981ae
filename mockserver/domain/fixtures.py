"""Seed data and API keys from files, checked against the spec before the mock starts."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mockserver.domain.auth import ApiKey, KeyRing
from mockserver.domain.copies import new_copy, new_key
from mockserver.domain.history import audit, record_version
from mockserver.domain.profiles import NAME_SPACE
from mockserver.domain.store import Record, State, utc_now
from mockserver.domain.timeutil import format_timestamp, parse_timestamp
from mockserver.spec.document import Spec
from mockserver.spec.fastcheck import first_problem, schema_validator

SEED_KEYS = ("access_profiles", "roles", "users", "role_attachments", "user_copies", "virtual_keys")
# Stable ids for nested records a fixture leaves out, so every start gives the same ids.
_FIXTURE_NAMESPACE = uuid.UUID("6f1d3c52-2b0e-4d7a-9c1f-4a5e8b7d2c30")


class FixtureError(Exception):
    """A fixture file cannot be used. The message names the file, the record and the field."""


def load_seed(path: Path, spec: Spec, clock: Callable[[], datetime] = utc_now) -> State:
    """The state described by a fixture file (JSON or YAML)."""
    document = _read(path)
    unknown = sorted(set(document) - set(SEED_KEYS))
    if unknown:
        raise FixtureError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; expected {', '.join(SEED_KEYS)}")
    profiles = document.get("access_profiles", [])
    if not isinstance(profiles, list):
        raise FixtureError(f"{path}: access_profiles must be a list of profiles")
    validator = schema_validator(spec, "AccessProfile")
    order = {name: i for i, name in enumerate(spec.schema("AccessProfile")["properties"])}
    state = State()
    loaded_at = format_timestamp(clock())
    for index, raw in enumerate(profiles):
        where = f"{path}: access_profiles[{index}]"
        if not isinstance(raw, dict):
            raise FixtureError(f"{where}: expected an object")
        if "id" in raw and "name" in raw:
            where += f" (id {raw['id']}, {str(raw['name'])!r})"
        for required in ("id", "name"):
            if required not in raw:
                raise FixtureError(f"{where}: {required}: this field is required")
        profile = _complete(raw, loaded_at, order)
        if not validator.is_valid(profile):
            problem = first_problem(spec, "AccessProfile", profile)
            field, message = problem or ("(record)", "refused by the compiled schema check")
            raise FixtureError(f"{where}: {field}: {message}")
        if profile["id"] in state.profiles:
            raise FixtureError(f"{where}: id: {profile['id']} is used by an earlier profile")
        if profile["name"] != profile["name"].strip(NAME_SPACE) or not profile["name"]:
            raise FixtureError(f"{where}: name: expected a trimmed, non-blank name")
        if profile["name"] in state.names:
            raise FixtureError(f"{where}: name: {profile['name']!r} is used by profile {state.names[profile['name']]}")
        providers = [pc["provider_name"] for pc in profile["provider_configs"]]
        for i, name in enumerate(providers):
            if name in providers[:i]:
                raise FixtureError(f"{where}: provider_configs[{i}].provider_name: {name!r} appears twice")
        state.put_profile(profile)
    _number_nested(state, path)
    for profile in state.profiles.values():
        record_version(state, profile, "fixtures")
        audit(state, "create", profile["id"], "fixtures", parse_timestamp(profile["created_at"]), after=profile)
    state.counters["profile"] = max(state.profiles, default=0)
    _load_people(state, document, path)
    _load_attachments(state, document, path)
    _load_copies(state, document, path, clock())
    _load_keys(state, document, path)
    return state


def _records(document: dict[str, Any], key: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) for each record of a top-level list, checking it is a list of objects."""
    items = document.get(key, [])
    if not isinstance(items, list):
        raise FixtureError(f"{path}: {key} must be a list")
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise FixtureError(f"{path}: {key}[{index}]: expected an object")
        found.append((f"{path}: {key}[{index}]", item))
    return found


def _field(where: str, record: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    value = record.get(name, default)
    if value is ...:
        raise FixtureError(f"{where}: {name}: this field is required")
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FixtureError(f"{where}: {name}: expected {expected}, got {value!r}")
    return value


def _load_people(state: State, document: dict[str, Any], path: Path) -> None:
    """Roles with their members and users with their roles; the two sides must agree."""
    for where, raw in _records(document, "roles", path):
        role_id = _field(where, raw, "id", int)
        if role_id in state.roles:
            raise FixtureError(f"{where}: id: {role_id} is used by an earlier role")
        members = _field(where, raw, "member_ids", list, [])
        state.roles[role_id] = {"id": role_id, "name": _field(where, raw, "name", str), "member_ids": members}
    for where, raw in _records(document, "users", path):
        user_id = _field(where, raw, "id", str)
        if user_id in state.users:
            raise FixtureError(f"{where}: id: {user_id!r} is used by an earlier user")
        state.users[user_id] = {
            "id": user_id,
            "email": _field(where, raw, "email", str),
            "role_ids": _field(where, raw, "role_ids", list, []),
            "group_ids": _field(where, raw, "group_ids", list, []),
        }
    for index, role in enumerate(state.roles.values()):
        for j, member in enumerate(role["member_ids"]):
            user = state.users.get(member)
            if user is None:
                raise FixtureError(f"{path}: roles[{index}] (id {role['id']}): member_ids[{j}]: no user {member!r}")
            if role["id"] not in user["role_ids"]:
                raise FixtureError(
                    f"{path}: roles[{index}] (id {role['id']}): member_ids[{j}]: user {member!r} does not list "
                    f"role {role['id']} in its role_ids"
                )
    for index, user in enumerate(state.users.values()):
        for j, role_id in enumerate(user["role_ids"]):
            listed = state.roles.get(role_id)
            if listed is None:
                raise FixtureError(f"{path}: users[{index}] ({user['id']!r}): role_ids[{j}]: no role with id {role_id}")
            if user["id"] not in listed["member_ids"]:
                raise FixtureError(
                    f"{path}: users[{index}] ({user['id']!r}): role_ids[{j}]: role {role_id} does not list "
                    f"{user['id']!r} among its member_ids"
                )


def _load_attachments(state: State, document: dict[str, Any], path: Path) -> None:
    defaults: dict[int, int] = {}
    for where, raw in _records(document, "role_attachments", path):
        profile_id = _field(where, raw, "access_profile_id", int)
        role_id = _field(where, raw, "role_id", int)
        is_default = _field(where, raw, "is_default", bool, False)
        if profile_id not in state.profiles:
            raise FixtureError(f"{where}: access_profile_id: no profile with id {profile_id}")
        if role_id not in state.roles:
            raise FixtureError(f"{where}: role_id: no role with id {role_id}")
        if any(a["access_profile_id"] == profile_id and a["role_id"] == role_id for a in state.role_attachments):
            raise FixtureError(f"{where}: profile {profile_id} is attached to role {role_id} twice")
        if is_default and role_id in defaults:
            raise FixtureError(f"{where}: is_default: role {role_id} already has default profile {defaults[role_id]}")
        if is_default:
            defaults[role_id] = profile_id
        attachment = {
            "id": state.next_id("role_attachment"),
            "access_profile_id": profile_id,
            "role_id": role_id,
            "role_name": state.roles[role_id]["name"],
            "is_default": is_default,
        }
        state.role_attachments = (*state.role_attachments, attachment)


def _load_copies(state: State, document: dict[str, Any], path: Path, now: datetime) -> None:
    """Users' copies, made as the API makes them, with stable ids and key values."""
    issued = itertools.count(1)

    def stable_id() -> str:
        return str(uuid.uuid5(_FIXTURE_NAMESPACE, f"copies/{next(issued)}"))

    for where, raw in _records(document, "user_copies", path):
        user_id = _field(where, raw, "user_id", str)
        parent = _field(where, raw, "parent_profile_id", int)
        if user_id not in state.users:
            raise FixtureError(f"{where}: user_id: no user {user_id!r}")
        profile = state.profiles.get(parent)
        if profile is None:
            raise FixtureError(f"{where}: parent_profile_id: no profile with id {parent}")
        if any(c["user_id"] == user_id and c["parent_profile_id"] == parent for c in state.user_copies):
            raise FixtureError(f"{where}: user {user_id!r} already holds a copy of profile {parent}")
        copy = new_copy(state, stable_id, user_id, profile, now)
        changes = {"is_active": _field(where, raw, "is_active", bool, True)}
        expires = _field(where, raw, "expires_at", (str, type(None)), None)
        if expires is not None:
            try:
                parse_timestamp(expires)
            except ValueError as exc:
                raise FixtureError(f"{where}: expires_at: {exc}") from None
        changes["expires_at"] = expires
        state.user_copies = tuple({**copy, **changes} if c is copy else c for c in state.user_copies)


def _load_keys(state: State, document: dict[str, Any], path: Path) -> None:
    """Keys that are not a copy's: extra keys issued to a user, and standalone keys assigned directly.

    Each is ``user_id``, ``name``, optional ``description`` and ``is_access_profile_managed`` (false,
    a standalone key, unless given); ids and values are made as the API makes them, stably.
    """
    issued = itertools.count(1)

    def stable_id() -> str:
        return str(uuid.uuid5(_FIXTURE_NAMESPACE, f"keys/{next(issued)}"))

    for where, raw in _records(document, "virtual_keys", path):
        user_id = _field(where, raw, "user_id", str)
        if user_id not in state.users:
            raise FixtureError(f"{where}: user_id: no user {user_id!r}")
        name = _field(where, raw, "name", str)
        if not name:
            raise FixtureError(f"{where}: name: expected a non-empty name")
        if any(k["name"] == name for k in state.virtual_keys):
            raise FixtureError(f"{where}: name: {name!r} is used by another key")
        description = _field(where, raw, "description", (str, type(None)), None)
        managed = _field(where, raw, "is_access_profile_managed", bool, False)
        if managed and not any(c["user_id"] == user_id for c in state.user_copies):
            raise FixtureError(
                f"{where}: is_access_profile_managed: user {user_id!r} holds no copy, so no profile can govern the key"
            )
        new_key(state, stable_id, user_id, None, name, description, managed=managed)


def load_api_keys(path: Path, permissions: frozenset[str]) -> KeyRing:
    """Admin logins and scoped management keys; every scope must be a permission of the spec."""
    document = _read(path)
    admins: dict[str, str] = {}
    keys: dict[str, ApiKey] = {}
    for index, admin in enumerate(document.get("admins", [])):
        where = f"{path}: admins[{index}]"
        if not isinstance(admin, dict) or not all(isinstance(admin.get(k), str) for k in ("username", "password")):
            raise FixtureError(f"{where}: expected an object with string username and password")
        admins[admin["username"]] = admin["password"]
    for index, entry in enumerate(document.get("api_keys", [])):
        where = f"{path}: api_keys[{index}]"
        if not isinstance(entry, dict):
            raise FixtureError(f"{where}: expected an object with name, key and scopes")
        for field in ("name", "key"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise FixtureError(f"{where}: {field}: expected a non-empty string")
        scopes = entry.get("scopes", [])
        if not isinstance(scopes, list):
            raise FixtureError(f"{where}: scopes: expected a list of permissions")
        for i, scope in enumerate(scopes):
            if scope not in permissions:
                known = ", ".join(sorted(permissions))
                raise FixtureError(f"{where}: scopes[{i}]: unknown permission {scope!r}; expected one of {known}")
        if entry["key"] in keys:
            raise FixtureError(f"{where}: key: the same key is given twice")
        user_id = entry.get("user_id")
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise FixtureError(f"{where}: user_id: expected the id of the user the key signs in as, got {user_id!r}")
        keys[entry["key"]] = ApiKey(entry["name"], entry["key"], frozenset(scopes), user_id)
    if not admins and not keys:
        raise FixtureError(f"{path}: no admins and no api_keys; nobody could call the mock")
    return KeyRing(admins, keys)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FixtureError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(document, dict):
        raise FixtureError(f"{path}: expected an object at the top level")
    return document


def _complete(raw: Record, loaded_at: str, order: dict[str, int]) -> Record:
    """Fill in what a hand-written fixture may leave out, with the values create would give."""
    profile: Record = {
        "description": None,
        "is_active": True,
        "version": 1,
        "tags": [],
        "provider_configs": [],
        "budgets": [],
        "calendar_aligned": False,
        "auto_rotation_interval": 0,
        "mcp_tool_groups": [],
        "mcp_servers": [],
        "mcp_tool_overrides": [],
        "created_at": loaded_at,
        **json.loads(json.dumps(raw)),
    }
    profile.setdefault("updated_at", profile["created_at"])
    # Keys in the order the schema lists them, as create writes them.
    profile = {k: profile[k] for k in sorted(profile, key=lambda k: order.get(k, len(order)))}
    if not isinstance(profile["provider_configs"], list) or not isinstance(profile["budgets"], list):
        return profile  # the schema check reports it
    pid = profile["id"]
    for b, budget in enumerate(profile["budgets"]):
        _complete_budget(budget, f"{pid}/budgets/{b}", "total", profile["created_at"])
    for p, pc in enumerate(profile["provider_configs"]):
        if not isinstance(pc, dict):
            continue
        pc.setdefault("all_models_allowed", False)
        pc.setdefault("allowed_models", [])
        pc.setdefault("budgets", [])
        for b, budget in enumerate(pc["budgets"] if isinstance(pc["budgets"], list) else []):
            _complete_budget(
                budget, f"{pid}/pc/{p}/budgets/{b}", f"provider:{pc.get('provider_name')}", profile["created_at"]
            )
        if isinstance(pc.get("rate_limit"), dict):
            _complete_rate_limit(pc["rate_limit"], f"{pid}/pc/{p}/rate_limit")
    if isinstance(profile.get("rate_limit"), dict):
        _complete_rate_limit(profile["rate_limit"], f"{pid}/rate_limit")
    return profile


def _complete_budget(budget: Any, key: str, scope: str, created_at: str) -> None:
    if isinstance(budget, dict):
        budget.setdefault("id", str(uuid.uuid5(_FIXTURE_NAMESPACE, key)))
        budget["scope"] = scope
        budget.setdefault("current_usage", 0)
        budget.setdefault("last_reset", created_at)


def _complete_rate_limit(limit: Record, key: str) -> None:
    limit.setdefault("id", str(uuid.uuid5(_FIXTURE_NAMESPACE, key)))
    limit.setdefault("token_current_usage", 0)
    limit.setdefault("request_current_usage", 0)


def _number_nested(state: State, path: Path) -> None:
    """Give provider configs without an id the next free ids, after the largest given one."""
    configs = [pc for p in state.profiles.values() for pc in p["provider_configs"]]
    ids = [pc["id"] for pc in configs if "id" in pc]
    if len(ids) != len(set(ids)):
        raise FixtureError(f"{path}: provider_configs[].id: provider config ids must be unique across all profiles")
    last = max(ids, default=0)
    for pc in configs:
        if "id" not in pc:
            last += 1
            pc["id"] = last
    state.counters["provider_config"] = last
