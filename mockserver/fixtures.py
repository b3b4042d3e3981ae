"""Seed data and API keys from files, checked against the spec before the mock starts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mockserver.auth import ApiKey, KeyRing
from mockserver.fastcheck import schema_validator
from mockserver.profiles import record_version
from mockserver.schema_errors import describe
from mockserver.spec import Spec
from mockserver.store import Record, State, utc_now
from mockserver.timeutil import format_timestamp

SEED_KEYS = ("access_profiles",)
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
    names: dict[str, int] = {}
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
            field, message = _first_problem(spec, "AccessProfile", profile)
            raise FixtureError(f"{where}: {field}: {message}")
        if profile["id"] in state.profiles:
            raise FixtureError(f"{where}: id: {profile['id']} is used by an earlier profile")
        if profile["name"] != profile["name"].strip() or not profile["name"]:
            raise FixtureError(f"{where}: name: expected a trimmed, non-blank name")
        if profile["name"] in names:
            raise FixtureError(f"{where}: name: {profile['name']!r} is used by profile {names[profile['name']]}")
        providers = [pc["provider_name"] for pc in profile["provider_configs"]]
        for i, name in enumerate(providers):
            if name in providers[:i]:
                raise FixtureError(f"{where}: provider_configs[{i}].provider_name: {name!r} appears twice")
        names[profile["name"]] = profile["id"]
        state.put_profile(profile)
    _number_nested(state, path)
    for profile in state.profiles.values():
        record_version(state, profile, "fixtures")
    state.counters["profile"] = max(state.profiles, default=0)
    return state


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
        keys[entry["key"]] = ApiKey(entry["name"], entry["key"], frozenset(scopes))
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


def _first_problem(spec: Spec, schema_name: str, value: Any) -> tuple[str, str]:
    """The first problem as openapi-core's schema validator words it (used only for the message)."""
    from openapi_schema_validator import OAS31Validator

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec.document["components"]}
    validator = OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return describe(errors[0]) if errors else ("(record)", "refused by the compiled schema check")


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
