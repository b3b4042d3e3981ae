"""Seed data and API keys: the bundled files, and clear errors for broken ones."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mockserver.domain.fixtures import FixtureError, load_api_keys, load_seed
from mockserver.resources import bundled_api_keys, bundled_fixtures, bundled_spec
from mockserver.spec.document import Spec

SPEC = Spec.load(bundled_spec())
PERMISSIONS = frozenset(op.permission for op in SPEC.operations.values())


@pytest.fixture(scope="module")
def default_profiles() -> list[dict[str, Any]]:
    return list(load_seed(bundled_fixtures(), SPEC).profiles.values())


def write(tmp_path: Path, document: Any, name: str = "seed.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_default_fixtures_are_realistic_and_varied(default_profiles: list[dict[str, Any]]) -> None:
    assert len(default_profiles) >= 8
    providers = {pc["provider_name"] for p in default_profiles for pc in p["provider_configs"]}
    assert {"anthropic", "openai", "bedrock", "azure", "vertex"} <= providers
    budgets = [
        b for p in default_profiles for b in p["budgets"] + [x for pc in p["provider_configs"] for x in pc["budgets"]]
    ]
    assert {b["reset_duration"] for b in budgets} == {"1h", "1d", "1w", "1M", "1Q", "1Y"}
    assert any(b["reset_duration"] == "1Q" and "reset_config" in b for b in budgets)
    assert any("rate_limit" in p for p in default_profiles)
    assert any(p["tags"] for p in default_profiles)
    assert any(p["mcp_tool_groups"] and p["mcp_servers"] and p["mcp_tool_overrides"] for p in default_profiles)
    assert [p["is_active"] for p in default_profiles].count(False) == 1
    assert any(p["auto_rotation_interval"] and p.get("next_rotation_at") for p in default_profiles)


def test_loaded_profiles_get_every_server_field(default_profiles: list[dict[str, Any]]) -> None:
    for profile in default_profiles:
        assert list(profile)[:2] == ["id", "name"]
        for budget in profile["budgets"]:
            assert budget["scope"] == "total" and isinstance(budget["id"], str)
        for pc in profile["provider_configs"]:
            assert isinstance(pc["id"], int)
            assert all(b["scope"] == f"provider:{pc['provider_name']}" for b in pc["budgets"])
    ids = [pc["id"] for p in default_profiles for pc in p["provider_configs"]]
    assert len(ids) == len(set(ids))


def test_loading_is_deterministic() -> None:
    first = load_seed(bundled_fixtures(), SPEC, clock=lambda: datetime(2026, 1, 1))
    second = load_seed(bundled_fixtures(), SPEC, clock=lambda: datetime(2026, 1, 1))
    assert first.profiles == second.profiles


def test_each_fixture_profile_starts_its_history(default_profiles: list[dict[str, Any]]) -> None:
    state = load_seed(bundled_fixtures(), SPEC)
    for profile in default_profiles:
        (row,) = state.history.versions(profile["id"])
        assert row["version"] == profile["version"]
        assert json.loads(row["snapshot"]) == profile
    assert state.counters["profile"] == max(state.profiles)


def test_yaml_fixtures_and_minimal_records_work(tmp_path: Path) -> None:
    path = write(tmp_path, "access_profiles:\n  - id: 5\n    name: Tiny\n", "seed.yaml")
    (profile,) = load_seed(path, SPEC).profiles.values()
    assert profile["name"] == "Tiny"
    assert profile["is_active"] is True and profile["version"] == 1 and profile["tags"] == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", "seed.json: not valid JSON"),
        ([], "seed.json: expected an object at the top level"),
        ({"profiles": []}, "seed.json: unknown top-level key(s) profiles; expected access_profiles"),
        ({"access_profiles": {}}, "seed.json: access_profiles must be a list"),
        ({"access_profiles": [{"name": "x"}]}, "seed.json: access_profiles[0]: id: this field is required"),
        (
            {"access_profiles": [{"id": 1, "name": "A"}, {"id": 2, "name": "B", "tags": "x"}]},
            "seed.json: access_profiles[1] (id 2, 'B'): tags: expected array",
        ),
        (
            {"access_profiles": [{"id": 3, "name": "C", "budgets": [{"max_limit": 1, "reset_duration": "2d"}]}]},
            "seed.json: access_profiles[0] (id 3, 'C'): budgets[0].reset_duration: expected one of 1h, 1d",
        ),
        (
            {
                "access_profiles": [
                    {
                        "id": 4,
                        "name": "D",
                        "provider_configs": [{"provider_name": "x", "rate_limit": {"token_reset_duration": "1Q"}}],
                    }
                ]
            },
            "access_profiles[0] (id 4, 'D'): provider_configs[0].rate_limit.token_reset_duration",
        ),
        (
            {"access_profiles": [{"id": 1, "name": "A"}, {"id": 1, "name": "B"}]},
            "access_profiles[1] (id 1, 'B'): id: 1 is used by an earlier profile",
        ),
        (
            {"access_profiles": [{"id": 1, "name": "A"}, {"id": 2, "name": "A"}]},
            "access_profiles[1] (id 2, 'A'): name: 'A' is used by profile 1",
        ),
        ({"access_profiles": [{"id": 1, "name": " A"}]}, "name: expected a trimmed, non-blank name"),
        (
            {
                "access_profiles": [
                    {"id": 1, "name": "A", "provider_configs": [{"provider_name": "x"}, {"provider_name": "x"}]}
                ]
            },
            "provider_configs[1].provider_name: 'x' appears twice",
        ),
    ],
    ids=[
        "bad-json",
        "not-an-object",
        "unknown-key",
        "not-a-list",
        "no-id",
        "wrong-type",
        "bad-enum",
        "nested-field",
        "duplicate-id",
        "duplicate-name",
        "untrimmed-name",
        "duplicate-provider",
    ],
)
def test_a_bad_fixture_names_file_record_and_field(tmp_path: Path, document: Any, expected: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(FixtureError) as caught:
        load_seed(path, SPEC)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_fixture_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="nope.json: cannot read"):
        load_seed(tmp_path / "nope.json", SPEC)


def test_bundled_api_keys_load() -> None:
    ring = load_api_keys(bundled_api_keys(), PERMISSIONS)
    assert ring.admins == {"admin": "bifrost-admin"}
    assert {k.name for k in ring.keys.values()} == {"ci-admin", "dashboard-viewer", "provisioner", "erin-session"}
    # Only a user's session stands for a user (getMyVirtualKeyCreationPolicy); management keys do not.
    assert {k.name: k.user_id for k in ring.keys.values() if k.user_id} == {"erin-session": "u-erin"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, "no admins and no api_keys"),
        ({"admins": [{"username": "a"}]}, "admins[0]: expected an object with string username and password"),
        ({"api_keys": [{"name": "k", "scopes": []}]}, "api_keys[0]: key: expected a non-empty string"),
        (
            {"api_keys": [{"name": "k", "key": "s", "scopes": ["AccessProfiles:Read"]}]},
            "api_keys[0]: scopes[0]: unknown permission 'AccessProfiles:Read'",
        ),
        (
            {"api_keys": [{"name": "a", "key": "s"}, {"name": "b", "key": "s"}]},
            "api_keys[1]: key: the same key is given twice",
        ),
        (
            {"api_keys": [{"name": "a", "key": "s", "user_id": ""}]},
            "api_keys[0]: user_id: expected the id of the user the key signs in as, got ''",
        ),
    ],
    ids=["empty", "admin-without-password", "key-without-secret", "unknown-scope", "duplicate-key", "blank-user"],
)
def test_a_bad_api_keys_file_is_refused(tmp_path: Path, document: Any, expected: str) -> None:
    with pytest.raises(FixtureError, match=re.escape(expected)):
        load_api_keys(write(tmp_path, document, "keys.json"), PERMISSIONS)


def test_profiles_are_kept_in_id_order_whatever_the_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"access_profiles": [{"id": 9, "name": "c"}, {"id": 2, "name": "a"}, {"id": 5, "name": "b"}]}
    )
    assert list(load_seed(path, SPEC).profiles) == [2, 5, 9]


def test_default_fixtures_hold_roles_users_and_copies_that_agree() -> None:
    state = load_seed(bundled_fixtures(), SPEC)
    assert len(state.roles) >= 5 and len(state.users) >= 8
    for role in state.roles.values():
        assert all(role["id"] in state.users[m]["role_ids"] for m in role["member_ids"])
    for copy in state.user_copies:
        assert copy["parent_profile_id"] in state.profiles and copy["user_id"] in state.users
        (key,) = [k for k in state.virtual_keys if k["copy_id"] == copy["id"]]
        assert copy["virtual_key_ids"] == [key["id"]]
        assert key["is_access_profile_managed"] is True
    # Keys of no copy: standalone ones (one for a user without copies) and an extra, managed one.
    others = {k["name"]: (k["user_id"], k["is_access_profile_managed"]) for k in state.virtual_keys if not k["copy_id"]}
    assert others == {
        "erin-ci-runner": ("u-erin", False),
        "alice-notebook": ("u-alice", False),
        "frank-reporting": ("u-frank", True),
    }
    assert not any(c["user_id"] == "u-alice" for c in state.user_copies)
    assert {a["access_profile_id"] for a in state.role_attachments} >= {
        c["parent_profile_id"] for c in state.user_copies
    }
    assert load_seed(bundled_fixtures(), SPEC).virtual_keys == state.virtual_keys  # stable ids and values


PEOPLE = {
    "access_profiles": [{"id": 1, "name": "A"}],
    "roles": [{"id": 1, "name": "r", "member_ids": ["u1"]}],
    "users": [{"id": "u1", "email": "u1@example.com", "role_ids": [1]}],
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["roles"][0].update(member_ids=["u1", "ghost"]), "roles[0] (id 1): member_ids[1]: no user 'ghost'"),
        (lambda d: d["users"][0].update(role_ids=[1, 5]), "users[0] ('u1'): role_ids[1]: no role with id 5"),
        (
            lambda d: d["roles"][0].update(member_ids=[]),
            "users[0] ('u1'): role_ids[0]: role 1 does not list 'u1' among its member_ids",
        ),
        (
            lambda d: d["users"][0].update(role_ids=[]),
            "roles[0] (id 1): member_ids[0]: user 'u1' does not list role 1 in its role_ids",
        ),
        (
            lambda d: d.update(role_attachments=[{"access_profile_id": 2, "role_id": 1}]),
            "role_attachments[0]: access_profile_id: no profile with id 2",
        ),
        (
            lambda d: d.update(role_attachments=[{"access_profile_id": 1, "role_id": 3}]),
            "role_attachments[0]: role_id: no role with id 3",
        ),
        (
            lambda d: d.update(user_copies=[{"user_id": "u2", "parent_profile_id": 1}]),
            "user_copies[0]: user_id: no user 'u2'",
        ),
        (
            lambda d: d.update(user_copies=[{"user_id": "u1", "parent_profile_id": 9}]),
            "user_copies[0]: parent_profile_id: no profile with id 9",
        ),
        (
            lambda d: d.update(user_copies=[{"user_id": "u1", "parent_profile_id": 1}] * 2),
            "user_copies[1]: user 'u1' already holds a copy of profile 1",
        ),
        (lambda d: d["users"][0].pop("email"), "users[0]: email: this field is required"),
        (
            lambda d: d.update(virtual_keys=[{"user_id": "u2", "name": "k"}]),
            "virtual_keys[0]: user_id: no user 'u2'",
        ),
        (
            lambda d: d.update(virtual_keys=[{"user_id": "u1", "name": "k"}, {"user_id": "u1", "name": "k"}]),
            "virtual_keys[1]: name: 'k' is used by another key",
        ),
        (
            lambda d: d.update(virtual_keys=[{"user_id": "u1", "name": "k", "is_access_profile_managed": True}]),
            "virtual_keys[0]: is_access_profile_managed: user 'u1' holds no copy",
        ),
        (lambda d: d.update(virtual_keys=[{"user_id": "u1"}]), "virtual_keys[0]: name: this field is required"),
    ],
    ids=[
        "unknown-member",
        "unknown-role",
        "member-not-listed",
        "role-not-listed",
        "attachment-to-unknown-profile",
        "attachment-to-unknown-role",
        "copy-of-unknown-user",
        "copy-of-unknown-profile",
        "second-copy",
        "user-without-email",
        "key-of-unknown-user",
        "key-name-twice",
        "managed-key-without-copy",
        "key-without-name",
    ],
)
def test_a_broken_reference_is_named(tmp_path: Path, change: Any, expected: str) -> None:
    document = json.loads(json.dumps(PEOPLE))
    change(document)
    with pytest.raises(FixtureError) as caught:
        load_seed(write(tmp_path, document), SPEC)
    assert expected in str(caught.value)
