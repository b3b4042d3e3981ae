"""The access-profile rules (contract §6, decisions 6-13 and 19), called directly on a store.

Bodies are plain dicts that are already schema-valid: the HTTP layer checks them against the spec
before ``Profiles`` sees them, so size limits and formats that only the spec enforces are not tested here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import FIXED_NOW, FakeClock

from mockserver.domain.profiles import Profiles
from mockserver.domain.store import Record, State, Store
from mockserver.domain.timeutil import format_timestamp
from mockserver.spec.document import Spec
from mockserver.spec.errors import ApiError, BadRequest, Conflict, NotFound

ACTOR = "tester"
NOW = "2026-11-26T12:00:00Z"  # FIXED_NOW as the API writes it
HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
NEXT_PROFILE_ID = 11  # the bundled fixtures hold profiles 1..10
NEXT_PROVIDER_CONFIG_ID = 30  # ...and provider configs 11..29
# Ids and usage of stored records in the bundled fixtures (fixtures/default.json).
P1_ANTHROPIC_BUDGET = "5f0c2a7e-3c1d-4b8e-9a51-0d6f4e2b7a10"
P1_ANTHROPIC_RATE_LIMIT = "8d3b6f21-9e4a-4c57-b0f2-6a1e5c9d3b44"
P1_MONTHLY_BUDGET = "0b9e1d3c-77a2-4f5e-8c64-2d8a9f1e6b35"
P1_QUARTERLY_BUDGET = "3e7a9c15-4d2b-4f60-8e1a-9b5c7d3f2e81"
P1_RATE_LIMIT = "c2e4a6f8-1b3d-4e5f-9a7b-3c5d7e9f1a2b"
DELETE_CONFLICT = "Profile has active user copies; detach users first."


class FreshId:
    """Equal to any id the store's ``new_uuid`` handed out (never one sent by a client or seeded)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("uuid-")

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<fresh id>"


FRESH = FreshId()


class Uuids:
    """Deterministic ``new_uuid`` for the store: ``uuid-1``, ``uuid-2``..."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return f"uuid-{self.issued}"


@pytest.fixture
def store(seed: State, clock: FakeClock) -> Store:
    return Store(seed, clock=clock, new_uuid=Uuids())


@pytest.fixture
def profiles(store: Store, spec: Spec) -> Profiles:
    return Profiles(store, spec)


def stored(store: Store, profile_id: int) -> Record:
    with store.atomic() as state:
        return state.profiles[profile_id]


def later(clock: FakeClock, **delta: float) -> str:
    """Move the clock on and return the new time as the API writes it."""
    clock.advance(**delta)
    return format_timestamp(clock.now)


def in_(delta: timedelta) -> str:
    return format_timestamp(FIXED_NOW + delta)


def fresh_ids(record: Record) -> list[str]:
    """Every budget and rate-limit id in a profile, in document order."""
    found: list[str] = []
    for pc in record["provider_configs"]:
        found += [b["id"] for b in pc["budgets"]]
        if "rate_limit" in pc:
            found.append(pc["rate_limit"]["id"])
    found += [b["id"] for b in record["budgets"]]
    if "rate_limit" in record:
        found.append(record["rate_limit"]["id"])
    return found


def template_of(record: Record) -> Record:
    """The template fields of a profile: what a clone copies, without ids, usage or the schedule."""
    drop = {"id", "name", "description", "is_active", "version", "created_at", "updated_at"}
    drop |= {"next_rotation_at", "last_rotation_at"}
    template = {k: copy.deepcopy(v) for k, v in record.items() if k not in drop}
    budgets = list(template["budgets"])
    for pc in template["provider_configs"]:
        del pc["id"]
        budgets += pc["budgets"]
        if "rate_limit" in pc:
            budgets.append(pc["rate_limit"])
    if "rate_limit" in template:
        budgets.append(template["rate_limit"])
    for part in budgets:
        for key in ("id", "current_usage", "last_reset", "token_current_usage", "request_current_usage"):
            part.pop(key, None)
    return template


# -- create (decision 6) ---------------------------------------------------------------------------


def test_create_minimal_body_gives_an_active_version_1_profile_with_empty_defaults(
    profiles: Profiles, store: Store
) -> None:
    record = profiles.create({"name": "New team"}, ACTOR)

    assert record == {
        "id": NEXT_PROFILE_ID,
        "name": "New team",
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
        "created_at": NOW,
        "updated_at": NOW,
    }
    assert stored(store, NEXT_PROFILE_ID) == record


def test_create_full_body_builds_nested_records_with_server_owned_fields(profiles: Profiles) -> None:
    body = {
        "name": "Research",
        "description": "Models for research",
        "tags": ["research", "gpu"],
        "provider_configs": [
            {
                "provider_name": "anthropic",
                "all_models_allowed": False,
                "allowed_models": ["claude-opus-4"],
                "budgets": [{"max_limit": 50, "reset_duration": "1d"}],
                "rate_limit": {"request_max_limit": 60, "request_reset_duration": "1h"},
            },
            {"provider_name": "openai"},
        ],
        "budgets": [{"max_limit": 500, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 2}}],
        "rate_limit": {"token_max_limit": 100000, "token_reset_duration": "1d"},
        "calendar_aligned": True,
        "mcp_tool_groups": [{"tool_group_id": 3}],
        "mcp_servers": [{"mcp_server_id": "github"}],
        "mcp_tool_overrides": [{"mcp_client_id": "github", "tool_name": "push", "action": "exclude"}],
    }

    record = profiles.create(body, ACTOR)

    assert record == {
        "id": NEXT_PROFILE_ID,
        "name": "Research",
        "description": "Models for research",
        "is_active": True,
        "version": 1,
        "tags": ["research", "gpu"],
        "provider_configs": [
            {
                "id": NEXT_PROVIDER_CONFIG_ID,
                "provider_name": "anthropic",
                "all_models_allowed": False,
                "allowed_models": ["claude-opus-4"],
                "budgets": [
                    {
                        "id": FRESH,
                        "max_limit": 50,
                        "reset_duration": "1d",
                        "scope": "provider:anthropic",
                        "current_usage": 0,
                        "last_reset": NOW,
                    }
                ],
                "rate_limit": {
                    "id": FRESH,
                    "request_max_limit": 60,
                    "request_reset_duration": "1h",
                    "token_current_usage": 0,
                    "request_current_usage": 0,
                },
            },
            {
                "id": NEXT_PROVIDER_CONFIG_ID + 1,
                "provider_name": "openai",
                "all_models_allowed": False,
                "allowed_models": [],
                "budgets": [],
            },
        ],
        "budgets": [
            {
                "id": FRESH,
                "max_limit": 500,
                "reset_duration": "1Q",
                "reset_config": {"quarter_start_month": 2},
                "scope": "total",
                "current_usage": 0,
                "last_reset": NOW,
            }
        ],
        "rate_limit": {
            "id": FRESH,
            "token_max_limit": 100000,
            "token_reset_duration": "1d",
            "token_current_usage": 0,
            "request_current_usage": 0,
        },
        "calendar_aligned": True,
        "auto_rotation_interval": 0,
        "mcp_tool_groups": [{"tool_group_id": 3}],
        "mcp_servers": [{"mcp_server_id": "github"}],
        "mcp_tool_overrides": [{"mcp_client_id": "github", "tool_name": "push", "action": "exclude"}],
        "created_at": NOW,
        "updated_at": NOW,
    }
    ids = fresh_ids(record)
    assert len(ids) == len(set(ids)) == 4


def test_create_ignores_read_only_fields_sent_by_the_client(profiles: Profiles) -> None:
    body = {
        "id": 99,
        "name": "Sneaky",
        "is_active": False,
        "version": 7,
        "created_at": "2020-01-01T00:00:00Z",
        "budgets": [
            {
                "id": P1_MONTHLY_BUDGET,
                "max_limit": 10,
                "reset_duration": "1d",
                "scope": "provider:openai",
                "current_usage": 9,
                "last_reset": "2020-01-01T00:00:00Z",
            }
        ],
    }

    record = profiles.create(body, ACTOR)

    assert (record["id"], record["is_active"], record["version"], record["created_at"]) == (11, True, 1, NOW)
    assert record["budgets"] == [
        {
            "id": FRESH,
            "max_limit": 10,
            "reset_duration": "1d",
            "scope": "total",
            "current_usage": 0,
            "last_reset": NOW,
        }
    ]


def test_create_records_version_1_with_the_profile_as_json_text(profiles: Profiles, store: Store) -> None:
    record = profiles.create({"name": "Versioned", "tags": ["x"]}, ACTOR)

    with store.atomic() as state:
        rows = state.history.versions(record["id"])
    assert len(rows) == 1
    row = rows[0]
    assert isinstance(row["snapshot"], str)
    assert json.loads(row["snapshot"]) == record
    assert {k: v for k, v in row.items() if k not in ("id", "snapshot")} == {
        "access_profile_id": record["id"],
        "version": 1,
        "name": "Versioned",
        "description": None,
        "changed_by": ACTOR,
        "created_at": NOW,
    }


def test_create_gives_consecutive_profile_ids(profiles: Profiles) -> None:
    first = profiles.create({"name": "One"}, ACTOR)
    second = profiles.create({"name": "Two"}, ACTOR)
    assert (first["id"], second["id"]) == (NEXT_PROFILE_ID, NEXT_PROFILE_ID + 1)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"provider_configs": [{"provider_name": f"p{i}"} for i in range(150)]}, id="150-provider-configs"),
        pytest.param({"budgets": [{"max_limit": i, "reset_duration": "1d"} for i in range(150)]}, id="150-budgets"),
        pytest.param(
            {
                "provider_configs": [
                    {
                        "provider_name": "openai",
                        "budgets": [{"max_limit": i, "reset_duration": "1d"} for i in range(150)],
                    }
                ]
            },
            id="150-budgets-in-a-provider-config",
        ),
        pytest.param({"tags": [f"t{i}" for i in range(80)]}, id="80-tags"),
    ],
)
def test_create_has_no_size_limits(profiles: Profiles, body: dict[str, Any]) -> None:
    """Decision 9: the 100/100/50 limits apply to update only (and the spec enforces them there)."""
    record = profiles.create({"name": "Big", **body}, ACTOR)
    for key, sent in body.items():
        assert len(record[key]) == len(sent)
    if "provider_configs" in body:
        assert [len(pc["budgets"]) for pc in record["provider_configs"]] == [
            len(pc.get("budgets", [])) for pc in body["provider_configs"]
        ]


# -- names (decision 7) ----------------------------------------------------------------------------


def _create(profiles: Profiles, name: str) -> Record:
    return profiles.create({"name": name}, ACTOR)


def _update(profiles: Profiles, name: str) -> Record:
    return profiles.update(2, {"name": name}, ACTOR)


def _clone(profiles: Profiles, name: str) -> Record:
    return profiles.clone(2, {"name": name}, ACTOR)


NAMING_OPERATIONS = pytest.mark.parametrize("operation", [_create, _update, _clone], ids=["create", "update", "clone"])


@NAMING_OPERATIONS
def test_names_are_trimmed(profiles: Profiles, operation: Callable[[Profiles, str], Record]) -> None:
    assert operation(profiles, "  \tQuiet team \n")["name"] == "Quiet team"


@NAMING_OPERATIONS
@pytest.mark.parametrize("name", ["platform engineering", "PLATFORM ENGINEERING"], ids=["lower", "upper"])
def test_names_differing_only_in_case_are_distinct(
    profiles: Profiles, operation: Callable[[Profiles, str], Record], name: str
) -> None:
    assert operation(profiles, name)["name"] == name


@NAMING_OPERATIONS
@pytest.mark.parametrize("name", ["Platform engineering", "  Platform engineering "], ids=["exact", "padded"])
def test_a_name_clash_after_trimming_is_a_conflict(
    profiles: Profiles, operation: Callable[[Profiles, str], Record], name: str
) -> None:
    with pytest.raises(Conflict) as caught:
        operation(profiles, name)
    assert (caught.value.status, caught.value.param) == (409, "name")


@NAMING_OPERATIONS
def test_a_blank_name_is_a_bad_request(profiles: Profiles, operation: Callable[[Profiles, str], Record]) -> None:
    with pytest.raises(BadRequest) as caught:
        operation(profiles, " \t ")
    assert (caught.value.status, caught.value.param) == (400, "name")


@NAMING_OPERATIONS
def test_255_characters_after_trimming_is_accepted(
    profiles: Profiles, operation: Callable[[Profiles, str], Record]
) -> None:
    assert operation(profiles, "  " + "n" * 255 + "  ")["name"] == "n" * 255


@NAMING_OPERATIONS
def test_more_than_255_characters_after_trimming_is_a_bad_request(
    profiles: Profiles, operation: Callable[[Profiles, str], Record]
) -> None:
    with pytest.raises(BadRequest) as caught:
        operation(profiles, "n" * 256)
    assert (caught.value.status, caught.value.param) == (400, "name")


def test_renaming_a_profile_to_its_own_name_padded_is_not_a_clash(profiles: Profiles, store: Store) -> None:
    before = stored(store, 1)
    assert profiles.update(1, {"name": "  Platform engineering  "}, ACTOR) == before


# -- update (decisions 8 and 10, and the seed document) --------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"name": "Platform"}, id="name"),
        pytest.param({"description": "Another text"}, id="description"),
        pytest.param({"description": None}, id="description-null-stores-null"),
        pytest.param({"tags": ["only-this"]}, id="tags"),
        pytest.param({"tags": []}, id="tags-emptied"),
        pytest.param({"calendar_aligned": False}, id="calendar-aligned"),
        pytest.param({"mcp_tool_groups": [{"tool_group_id": 9}, {"tool_group_id": 10}]}, id="mcp-tool-groups"),
        pytest.param({"mcp_servers": []}, id="mcp-servers-emptied"),
        pytest.param(
            {"mcp_tool_overrides": [{"mcp_client_id": "slack", "tool_name": "post", "action": "include"}]},
            id="mcp-tool-overrides",
        ),
    ],
)
def test_update_changes_only_the_fields_sent(
    profiles: Profiles, store: Store, clock: FakeClock, change: dict[str, Any]
) -> None:
    before = copy.deepcopy(stored(store, 1))
    now = later(clock, minutes=5)

    result = profiles.update(1, change, ACTOR)

    expected = {**before, **change, "version": before["version"] + 1, "updated_at": now}
    assert result == expected
    assert stored(store, 1) == expected


def test_update_rate_limit_null_removes_the_rate_limit(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 1))

    result = profiles.update(1, {"rate_limit": None}, ACTOR)

    expected = {k: v for k, v in before.items() if k != "rate_limit"}
    assert result == {**expected, "version": before["version"] + 1, "updated_at": NOW}


def test_update_rate_limit_null_without_a_rate_limit_changes_nothing(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 5))
    assert "rate_limit" not in before
    assert profiles.update(5, {"rate_limit": None}, ACTOR) == before


def test_update_rate_limit_replaces_the_limits_and_keeps_id_and_counters(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 1))

    result = profiles.update(1, {"rate_limit": {"request_max_limit": 10, "request_reset_duration": "1d"}}, ACTOR)

    assert result["rate_limit"] == {
        "id": P1_RATE_LIMIT,
        "request_max_limit": 10,
        "request_reset_duration": "1d",
        "request_current_usage": 88,
        "token_current_usage": 310422,
    }
    assert {k: v for k, v in result.items() if k != "rate_limit"} == {
        **{k: v for k, v in before.items() if k != "rate_limit"},
        "version": before["version"] + 1,
        "updated_at": NOW,
    }


def test_update_rate_limit_on_a_profile_without_one_creates_it(profiles: Profiles) -> None:
    result = profiles.update(5, {"rate_limit": {"token_max_limit": 1000}}, ACTOR)
    assert result["rate_limit"] == {
        "id": FRESH,
        "token_max_limit": 1000,
        "token_current_usage": 0,
        "request_current_usage": 0,
    }


def test_update_calendar_aligned_null_leaves_it_as_it_is(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 1))
    assert before["calendar_aligned"] is True
    assert profiles.update(1, {"calendar_aligned": None}, ACTOR) == before


def test_update_budgets_replace_the_array_keeping_referenced_budgets(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 1))
    body = {
        "budgets": [
            {
                "id": P1_QUARTERLY_BUDGET,
                "max_limit": 5000,
                "reset_duration": "1Q",
                "reset_config": {"quarter_start_month": 1},
            },
            {"max_limit": 10, "reset_duration": "1d"},
        ]
    }

    result = profiles.update(1, body, ACTOR)

    assert result["budgets"] == [
        {
            "id": P1_QUARTERLY_BUDGET,
            "max_limit": 5000,
            "reset_duration": "1Q",
            "reset_config": {"quarter_start_month": 1},
            "scope": "total",
            "current_usage": 1210.0,
            "last_reset": "2026-11-01T00:00:00Z",
        },
        {"id": FRESH, "max_limit": 10, "reset_duration": "1d", "scope": "total", "current_usage": 0, "last_reset": NOW},
    ]
    assert {k: v for k, v in result.items() if k != "budgets"} == {
        **{k: v for k, v in before.items() if k != "budgets"},
        "version": before["version"] + 1,
        "updated_at": NOW,
    }


def test_update_budget_with_an_id_not_on_this_profile_is_new(profiles: Profiles, store: Store) -> None:
    other_profiles_budget = stored(store, 2)["budgets"][0]["id"]

    result = profiles.update(
        1, {"budgets": [{"id": other_profiles_budget, "max_limit": 1, "reset_duration": "1d"}]}, ACTOR
    )

    assert result["budgets"] == [
        {"id": FRESH, "max_limit": 1, "reset_duration": "1d", "scope": "total", "current_usage": 0, "last_reset": NOW}
    ]
    assert stored(store, 2)["budgets"][0]["id"] == other_profiles_budget


def test_update_budget_ignores_server_owned_fields_sent_by_the_client(profiles: Profiles, store: Store) -> None:
    """Sending back a budget as read, with usage and scope edited, changes nothing."""
    before = copy.deepcopy(stored(store, 1))
    budgets = copy.deepcopy(before["budgets"])
    budgets[0].update(current_usage=0, scope="provider:openai", last_reset="2020-01-01T00:00:00Z")

    assert profiles.update(1, {"budgets": budgets}, ACTOR) == before


def test_update_provider_configs_keep_ids_and_usage_by_provider_name(profiles: Profiles, store: Store) -> None:
    before = copy.deepcopy(stored(store, 1))
    body = {
        "provider_configs": [
            {"provider_name": "bedrock", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]},
            {
                "provider_name": "anthropic",
                "all_models_allowed": True,
                "budgets": [
                    {"id": P1_ANTHROPIC_BUDGET, "max_limit": 350, "reset_duration": "1M"},
                    {"max_limit": 20, "reset_duration": "1d"},
                ],
                "rate_limit": {"request_max_limit": 200, "request_reset_duration": "1h"},
            },
        ]
    }

    result = profiles.update(1, body, ACTOR)

    assert result["provider_configs"] == [
        {
            "id": NEXT_PROVIDER_CONFIG_ID,
            "provider_name": "bedrock",
            "all_models_allowed": False,
            "allowed_models": [],
            "budgets": [
                {
                    "id": FRESH,
                    "max_limit": 5,
                    "reset_duration": "1d",
                    "scope": "provider:bedrock",
                    "current_usage": 0,
                    "last_reset": NOW,
                }
            ],
        },
        {
            "id": 11,
            "provider_name": "anthropic",
            "all_models_allowed": True,
            "allowed_models": [],
            "budgets": [
                {
                    "id": P1_ANTHROPIC_BUDGET,
                    "max_limit": 350,
                    "reset_duration": "1M",
                    "scope": "provider:anthropic",
                    "current_usage": 42.17,
                    "last_reset": "2026-11-01T00:00:00Z",
                },
                {
                    "id": FRESH,
                    "max_limit": 20,
                    "reset_duration": "1d",
                    "scope": "provider:anthropic",
                    "current_usage": 0,
                    "last_reset": NOW,
                },
            ],
            "rate_limit": {
                "id": P1_ANTHROPIC_RATE_LIMIT,
                "request_max_limit": 200,
                "request_reset_duration": "1h",
                "request_current_usage": 17,
                "token_current_usage": 0,
            },
        },
    ]
    assert {k: v for k, v in result.items() if k != "provider_configs"} == {
        **{k: v for k, v in before.items() if k != "provider_configs"},
        "version": before["version"] + 1,
        "updated_at": NOW,
    }


def test_update_provider_config_under_a_new_name_is_new(profiles: Profiles) -> None:
    body = {
        "provider_configs": [
            {
                "provider_name": "anthropic-eu",
                "budgets": [{"id": P1_ANTHROPIC_BUDGET, "max_limit": 300, "reset_duration": "1M"}],
            }
        ]
    }

    [config] = profiles.update(1, body, ACTOR)["provider_configs"]

    assert config["id"] == NEXT_PROVIDER_CONFIG_ID
    assert config["budgets"] == [
        {
            "id": FRESH,
            "max_limit": 300,
            "reset_duration": "1M",
            "scope": "provider:anthropic-eu",
            "current_usage": 0,
            "last_reset": NOW,
        }
    ]


def test_update_budgets_sent_twice_with_one_id_keep_it_once(profiles: Profiles) -> None:
    budget = {"id": P1_MONTHLY_BUDGET, "max_limit": 1500, "reset_duration": "1M"}

    first, second = profiles.update(1, {"budgets": [budget, budget]}, ACTOR)["budgets"]

    assert (first["id"], first["current_usage"]) == (P1_MONTHLY_BUDGET, 611.5)
    assert (second["id"], second["current_usage"]) == (FRESH, 0)


@pytest.mark.parametrize(
    ("names", "index"),
    [
        pytest.param(["openai", "openai"], 1, id="second"),
        pytest.param(["anthropic", "openai", "anthropic"], 2, id="third"),
    ],
)
def test_update_duplicate_provider_name_is_a_bad_request(
    profiles: Profiles, store: Store, names: list[str], index: int
) -> None:
    before = store.snapshot()
    with pytest.raises(BadRequest) as caught:
        profiles.update(1, {"provider_configs": [{"provider_name": n} for n in names]}, ACTOR)
    assert (caught.value.status, caught.value.param) == (400, f"provider_configs[{index}].provider_name")
    assert store.snapshot() == before


def test_create_duplicate_provider_name_is_a_bad_request(profiles: Profiles, store: Store) -> None:
    before = store.snapshot()
    with pytest.raises(BadRequest) as caught:
        profiles.create({"name": "Dup", "provider_configs": [{"provider_name": "x"}, {"provider_name": "x"}]}, ACTOR)
    assert caught.value.param == "provider_configs[1].provider_name"
    assert store.snapshot() == before


@pytest.mark.parametrize("profile_id", range(1, 11), ids=lambda i: f"profile-{i}")
def test_update_echoing_the_stored_profile_changes_nothing(
    profiles: Profiles, store: Store, clock: FakeClock, profile_id: int
) -> None:
    """A client that reads a profile and sends it back unchanged gets it back with no version bump."""
    before = copy.deepcopy(stored(store, profile_id))
    with store.atomic() as state:
        rows, audit = len(state.history.versions(profile_id)), state.history.sizes()[1]
    clock.advance(hours=1)

    result = profiles.update(profile_id, copy.deepcopy(before), ACTOR)

    assert result == before
    assert stored(store, profile_id) == before
    with store.atomic() as state:
        assert (len(state.history.versions(profile_id)), state.history.sizes()[1]) == (rows, audit)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty-body"),
        pytest.param({"name": "Platform engineering"}, id="same-name"),
        pytest.param({"tags": ["team-platform", "production"]}, id="same-tags"),
        pytest.param({"calendar_aligned": True}, id="same-calendar-aligned"),
        pytest.param({"auto_rotation_interval": "30d"}, id="same-interval-written-as-days"),
        pytest.param({"auto_rotation_interval": 720 * HOUR_NS}, id="same-interval-as-nanoseconds"),
        pytest.param({"auto_rotation_interval": None, "next_rotation_at": "2026-12-14T09:00:00Z"}, id="same-schedule"),
    ],
)
def test_update_that_changes_nothing_keeps_version_and_history(
    profiles: Profiles, store: Store, clock: FakeClock, body: dict[str, Any]
) -> None:
    before_state = store.snapshot()
    before = copy.deepcopy(stored(store, 1))
    clock.advance(hours=1)

    assert profiles.update(1, body, ACTOR) == before
    assert store.snapshot() == before_state


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"description": "changed"}, id="description"),
        pytest.param({"budgets": []}, id="budgets"),
        pytest.param({"auto_rotation_interval": "7d"}, id="rotation"),
        pytest.param({"tags": ["production", "team-platform"]}, id="tag-order"),
    ],
)
def test_update_that_changes_something_bumps_version_once_and_appends_history(
    profiles: Profiles, store: Store, clock: FakeClock, body: dict[str, Any]
) -> None:
    before = copy.deepcopy(stored(store, 1))
    with store.atomic() as state:
        rows_before = list(state.history.versions(1))
    now = later(clock, hours=2)

    result = profiles.update(1, body, ACTOR)

    assert result["version"] == before["version"] + 1
    assert (result["created_at"], result["updated_at"]) == (before["created_at"], now)
    with store.atomic() as state:
        rows = state.history.versions(1)
    assert rows[:-1] == rows_before
    assert json.loads(rows[-1]["snapshot"]) == result
    assert {k: v for k, v in rows[-1].items() if k not in ("id", "snapshot")} == {
        "access_profile_id": 1,
        "version": before["version"] + 1,
        "name": result["name"],
        "description": result["description"],
        "changed_by": ACTOR,
        "created_at": now,
    }


def test_consecutive_updates_bump_the_version_by_one_each(profiles: Profiles, store: Store) -> None:
    versions = [profiles.update(1, {"description": f"text {i}"}, ACTOR)["version"] for i in range(3)]
    assert versions == [4, 5, 6]
    with store.atomic() as state:
        assert [row["version"] for row in state.history.versions(1)] == [3, 4, 5, 6]


@pytest.mark.parametrize(
    ("profile_id", "body", "error", "param"),
    [
        pytest.param(2, {"name": " Platform engineering "}, Conflict, "name", id="name-clash"),
        pytest.param(
            2,
            {"name": "Platform engineering", "provider_configs": [{"provider_name": "cohere"}]},
            Conflict,
            "name",
            id="name-clash-with-a-new-provider-config",
        ),
        pytest.param(
            2,
            {"name": "Platform engineering", "budgets": [{"max_limit": 1, "reset_duration": "1d"}]},
            Conflict,
            "name",
            id="name-clash-with-a-new-budget",
        ),
        pytest.param(1, {"description": "x", "name": "   "}, BadRequest, "name", id="blank-name"),
        pytest.param(1, {"name": "n" * 256}, BadRequest, "name", id="long-name"),
        pytest.param(
            1,
            {"tags": [], "provider_configs": [{"provider_name": "a"}, {"provider_name": "a"}]},
            BadRequest,
            "provider_configs[1].provider_name",
            id="duplicate-provider",
        ),
        pytest.param(
            1,
            {"description": "x", "next_rotation_at": None},
            BadRequest,
            "next_rotation_at",
            id="clear-schedule-while-on",
        ),
        pytest.param(
            1,
            {"provider_configs": [{"provider_name": "cohere"}], "auto_rotation_interval": "30m"},
            BadRequest,
            "auto_rotation_interval",
            id="short-interval-with-a-new-provider-config",
        ),
        pytest.param(
            1,
            {"budgets": [], "next_rotation_at": "2020-01-01T00:00:00Z"},
            BadRequest,
            "next_rotation_at",
            id="past-rotation",
        ),
        pytest.param(99, {"name": "Ghost"}, NotFound, "profile_id", id="unknown-profile"),
    ],
)
def test_a_refused_update_leaves_the_store_as_it_was(
    profiles: Profiles, store: Store, profile_id: int, body: dict[str, Any], error: type[ApiError], param: str
) -> None:
    before = store.snapshot()
    with pytest.raises(error) as caught:
        profiles.update(profile_id, body, ACTOR)
    assert caught.value.param == param
    assert store.snapshot() == before


# -- activate / deactivate (decision 10) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_id", "active"),
    [pytest.param(1, False, id="deactivate"), pytest.param(6, True, id="activate")],
)
def test_set_active_changes_only_is_active_and_updated_at(
    profiles: Profiles, store: Store, clock: FakeClock, profile_id: int, active: bool
) -> None:
    before = copy.deepcopy(stored(store, profile_id))
    assert before["is_active"] is not active
    with store.atomic() as state:
        rows = list(state.history.versions(profile_id))
    now = later(clock, minutes=1)

    result = profiles.set_active(profile_id, active, ACTOR)

    assert result == {**before, "is_active": active, "updated_at": now}
    assert stored(store, profile_id) == result
    with store.atomic() as state:
        assert state.history.versions(profile_id) == rows


@pytest.mark.parametrize(
    ("profile_id", "active"),
    [pytest.param(1, True, id="activate-active"), pytest.param(6, False, id="deactivate-inactive")],
)
def test_set_active_is_idempotent(
    profiles: Profiles, store: Store, clock: FakeClock, profile_id: int, active: bool
) -> None:
    before_state = store.snapshot()
    before = copy.deepcopy(stored(store, profile_id))
    clock.advance(minutes=1)

    assert profiles.set_active(profile_id, active, ACTOR) == before
    assert store.snapshot() == before_state


def test_set_active_twice_is_one_change(profiles: Profiles, store: Store, clock: FakeClock) -> None:
    first = profiles.set_active(1, False, ACTOR)
    clock.advance(minutes=1)
    assert profiles.set_active(1, False, ACTOR) == first
    assert stored(store, 1)["updated_at"] == NOW


@pytest.mark.parametrize("active", [True, False], ids=["activate", "deactivate"])
def test_set_active_on_an_unknown_profile_is_not_found(profiles: Profiles, active: bool) -> None:
    with pytest.raises(NotFound) as caught:
        profiles.set_active(99, active, ACTOR)
    assert (caught.value.status, caught.value.message) == (404, "Profile not found")


# -- list (decision 11) ----------------------------------------------------------------------------


def listed(page: dict[str, Any]) -> list[int]:
    return [p["id"] for p in page["access_profiles"]]


def test_list_defaults(profiles: Profiles, store: Store) -> None:
    page = profiles.list({})
    with store.atomic() as state:
        everything = [state.profiles[i] for i in range(1, 11)]
    assert page == {"access_profiles": everything, "count": 10, "total_count": 10, "limit": 25, "offset": 0}


@pytest.mark.parametrize(
    ("limit", "used"),
    [
        pytest.param(None, 25, id="none"),
        pytest.param(0, 25, id="zero"),
        pytest.param(-5, 25, id="negative"),
        pytest.param(1, 1, id="one"),
        pytest.param(100, 100, id="hundred"),
        pytest.param(101, 100, id="over-hundred"),
        pytest.param(10**12, 100, id="huge"),
    ],
)
def test_list_limit_is_clamped_and_echoed(profiles: Profiles, limit: int | None, used: int) -> None:
    for i in range(120):
        profiles.create({"name": f"Extra {i}"}, ACTOR)

    page = profiles.list({"limit": limit})

    assert (page["limit"], page["count"], page["total_count"]) == (used, used, 130)
    assert listed(page) == list(range(1, used + 1))


@pytest.mark.parametrize(
    ("offset", "used", "ids"),
    [
        pytest.param(None, 0, [1, 2, 3], id="none"),
        pytest.param(-3, 0, [1, 2, 3], id="negative"),
        pytest.param(0, 0, [1, 2, 3], id="zero"),
        pytest.param(4, 4, [5, 6, 7], id="middle"),
        pytest.param(8, 8, [9, 10], id="last-page"),
        pytest.param(10, 10, [], id="past-the-end"),
    ],
)
def test_list_offset_is_clamped_and_echoed(profiles: Profiles, offset: int | None, used: int, ids: list[int]) -> None:
    page = profiles.list({"limit": 3, "offset": offset})
    assert (page["offset"], page["limit"], listed(page)) == (used, 3, ids)
    assert (page["count"], page["total_count"]) == (len(ids), 10)


def test_list_stays_in_ascending_id_order_through_changes(profiles: Profiles, store: Store) -> None:
    """Listing relies on the store keeping profiles in id order (fixtures are sorted when loaded)."""
    snapshot = store.snapshot()
    profiles.delete(4, ACTOR)
    created = profiles.create({"name": "Newest"}, ACTOR)
    profiles.update(2, {"name": "Renamed"}, ACTOR)
    profiles.clone(1, {"name": "Cloned"}, ACTOR)
    expected = [1, 2, 3, 5, 6, 7, 8, 9, 10, created["id"], created["id"] + 1]
    assert listed(profiles.list({"limit": 100})) == expected
    assert listed(profiles.list({"limit": 100, "search": "e"})) == sorted(listed(profiles.list({"search": "e"})))
    store.restore(snapshot)
    assert listed(profiles.list({})) == list(range(1, 11))


@pytest.mark.parametrize(
    ("search", "ids"),
    [
        pytest.param("PLATFORM", [1], id="name-and-description-any-case"),
        pytest.param("openai", [2, 4, 10], id="description-only"),
        pytest.param("Assistant", [3, 5, 9], id="name-or-description"),
        pytest.param("retired", [6], id="profile-with-null-description"),
        pytest.param("weekly cap", [2], id="phrase"),
        pytest.param("no such text", [], id="no-match"),
        pytest.param("", list(range(1, 11)), id="empty-is-no-filter"),
    ],
)
def test_list_search_is_a_case_insensitive_substring_of_name_or_description(
    profiles: Profiles, search: str, ids: list[int]
) -> None:
    page = profiles.list({"search": search})
    assert (listed(page), page["count"], page["total_count"]) == (ids, len(ids), len(ids))


@pytest.mark.parametrize(
    ("tags", "ids"),
    [
        pytest.param("production", [1, 3], id="one-tag"),
        pytest.param("team-platform,research", [1, 2, 4, 7], id="any-of-two"),
        pytest.param("team-platform, research,,", [1, 2, 4, 7], id="items-trimmed-empties-dropped"),
        pytest.param(" deprecated ", [6], id="padded"),
        pytest.param("Production", [], id="case-sensitive"),
        pytest.param("product", [], id="whole-tags-only"),
        pytest.param(" , ,", list(range(1, 11)), id="only-empties-is-no-filter"),
    ],
)
def test_list_tags_match_any(profiles: Profiles, tags: str, ids: list[int]) -> None:
    page = profiles.list({"tags": tags})
    assert (listed(page), page["total_count"]) == (ids, len(ids))


@pytest.mark.parametrize(
    ("is_active", "ids"),
    [
        pytest.param(False, [6], id="inactive"),
        pytest.param(True, [1, 2, 3, 4, 5, 7, 8, 9, 10], id="active"),
        pytest.param(None, list(range(1, 11)), id="none-is-no-filter"),
    ],
)
def test_list_is_active_filters_exactly(profiles: Profiles, is_active: bool | None, ids: list[int]) -> None:
    assert listed(profiles.list({"is_active": is_active})) == ids


def test_list_filters_combine_and_total_count_counts_all_matches(profiles: Profiles) -> None:
    profiles.set_active(7, False, ACTOR)

    page = profiles.list({"tags": "research,team-platform", "is_active": True, "limit": 1, "offset": 1})

    assert (listed(page), page["count"], page["total_count"]) == ([2], 1, 3)


# -- delete (decision 12) --------------------------------------------------------------------------


def attachment(row_id: int, profile_id: int, role_id: int) -> Record:
    return {
        "id": row_id,
        "access_profile_id": profile_id,
        "role_id": role_id,
        "role_name": f"role-{role_id}",
        "is_default": False,
    }


def user_copy(row_id: int, profile_id: int, user_id: str) -> Record:
    return {"id": row_id, "user_id": user_id, "parent_profile_id": profile_id, "name": "copy"}


def test_delete_removes_the_profile_and_its_role_attachments(profiles: Profiles, store: Store) -> None:
    with store.write() as state:
        state.role_attachments = (
            attachment(1, 1, 7),
            attachment(2, 2, 7),
            attachment(3, 1, 8),
        )
        state.user_copies = (user_copy(1, 2, "u-1"),)
        versions = copy.deepcopy(state.history.versions(1))

    assert profiles.delete(1, ACTOR) is None

    with store.atomic() as state:
        assert 1 not in state.profiles
        assert state.role_attachments == (attachment(2, 2, 7),)
        assert state.user_copies == (user_copy(1, 2, "u-1"),)
        assert state.history.versions(1) == versions
    with pytest.raises(NotFound):
        profiles.get(1)
    assert 1 not in listed(profiles.list({}))


def test_delete_with_a_user_copy_is_a_conflict_and_changes_nothing(profiles: Profiles, store: Store) -> None:
    with store.write() as state:
        state.role_attachments = (attachment(1, 1, 7),)
        state.user_copies = (
            user_copy(1, 2, "u-1"),
            user_copy(2, 1, "u-2"),
        )
    before = store.snapshot()

    with pytest.raises(Conflict) as caught:
        profiles.delete(1, ACTOR)

    assert (caught.value.status, caught.value.message) == (409, DELETE_CONFLICT)
    assert store.snapshot() == before


def test_delete_after_the_copy_is_gone_succeeds(profiles: Profiles, store: Store) -> None:
    with store.write() as state:
        state.user_copies = (user_copy(1, 1, "u-1"),)
    with pytest.raises(Conflict):
        profiles.delete(1, ACTOR)
    with store.write() as state:
        state.user_copies = ()

    profiles.delete(1, ACTOR)

    with store.atomic() as state:
        assert 1 not in state.profiles


@pytest.mark.parametrize("profile_id", [99, 0, -1], ids=["unknown", "zero", "negative"])
def test_delete_of_an_unknown_profile_is_not_found(profiles: Profiles, store: Store, profile_id: int) -> None:
    before = store.snapshot()
    with pytest.raises(NotFound) as caught:
        profiles.delete(profile_id, ACTOR)
    assert (caught.value.status, caught.value.message) == (404, "Profile not found")
    assert store.snapshot() == before


def test_delete_twice_is_not_found_the_second_time(profiles: Profiles) -> None:
    profiles.delete(1, ACTOR)
    with pytest.raises(NotFound):
        profiles.delete(1, ACTOR)


def test_a_deleted_name_can_be_used_again(profiles: Profiles) -> None:
    profiles.delete(1, ACTOR)
    assert profiles.create({"name": "Platform engineering"}, ACTOR)["id"] == NEXT_PROFILE_ID


# -- clone (decision 13) ---------------------------------------------------------------------------


def test_clone_copies_the_template_with_fresh_ids_and_zero_usage(profiles: Profiles, store: Store) -> None:
    source = copy.deepcopy(stored(store, 1))

    clone = profiles.clone(1, {"name": "  Platform engineering (copy) "}, ACTOR)

    assert template_of(clone) == template_of(source)
    assert {k: clone[k] for k in ("id", "name", "description", "is_active", "version", "created_at", "updated_at")} == {
        "id": NEXT_PROFILE_ID,
        "name": "Platform engineering (copy)",
        "description": source["description"],
        "is_active": True,
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    assert [pc["id"] for pc in clone["provider_configs"]] == [NEXT_PROVIDER_CONFIG_ID, NEXT_PROVIDER_CONFIG_ID + 1]
    ids = fresh_ids(clone)
    assert ids == [FRESH] * 5
    assert len(set(ids)) == 5
    budgets = clone["budgets"] + [b for pc in clone["provider_configs"] for b in pc["budgets"]]
    assert [(b["current_usage"], b["last_reset"]) for b in budgets] == [(0, NOW)] * 3
    limits = [clone["rate_limit"]] + [pc["rate_limit"] for pc in clone["provider_configs"] if "rate_limit" in pc]
    assert [(r["token_current_usage"], r["request_current_usage"]) for r in limits] == [(0, 0)] * 2
    assert "last_rotation_at" not in clone
    assert stored(store, 1) == source
    assert stored(store, NEXT_PROFILE_ID) == clone


def test_clone_restarts_the_rotation_schedule(profiles: Profiles) -> None:
    clone = profiles.clone(1, {"name": "Copy"}, ACTOR)
    assert (clone["auto_rotation_interval"], clone["next_rotation_at"]) == (30 * DAY_NS, in_(timedelta(days=30)))


@pytest.mark.parametrize(
    ("source_id", "body", "description"),
    [
        pytest.param(
            2,
            {"name": "Copy"},
            "Research workloads across OpenAI, Bedrock and Vertex, with a weekly cap.",
            id="source-description",
        ),
        pytest.param(2, {"name": "Copy", "description": "Mine"}, "Mine", id="given-description"),
        pytest.param(2, {"name": "Copy", "description": ""}, "", id="given-empty-description"),
        pytest.param(6, {"name": "Copy"}, None, id="source-null-description"),
    ],
)
def test_clone_description_is_the_given_one_or_the_sources(
    profiles: Profiles, source_id: int, body: dict[str, Any], description: str | None
) -> None:
    assert profiles.clone(source_id, body, ACTOR)["description"] == description


def test_clone_of_an_inactive_profile_is_active(profiles: Profiles) -> None:
    assert profiles.clone(6, {"name": "Revived"}, ACTOR)["is_active"] is True


def test_clone_has_no_role_attachments_or_user_copies(profiles: Profiles, store: Store) -> None:
    with store.write() as state:
        state.role_attachments = (attachment(1, 1, 7),)
        state.user_copies = (user_copy(1, 1, "u-1"),)

    clone = profiles.clone(1, {"name": "Copy"}, ACTOR)

    assert profiles.get(clone["id"]) == {"access_profile": clone, "roles": [], "user_count": 0}
    with store.atomic() as state:
        assert state.role_attachments == (attachment(1, 1, 7),)
        assert state.user_copies == (user_copy(1, 1, "u-1"),)


def test_clone_records_version_1(profiles: Profiles, store: Store) -> None:
    clone = profiles.clone(1, {"name": "Copy"}, ACTOR)
    with store.atomic() as state:
        [row] = state.history.versions(clone["id"])
    assert (row["version"], json.loads(row["snapshot"])) == (1, clone)


def test_clone_of_an_unknown_profile_is_not_found(profiles: Profiles, store: Store) -> None:
    before = store.snapshot()
    with pytest.raises(NotFound) as caught:
        profiles.clone(99, {"name": "Copy"}, ACTOR)
    assert (caught.value.status, caught.value.message) == (404, "Source profile not found")
    assert store.snapshot() == before


def test_clone_with_a_clashing_name_is_a_conflict_and_changes_nothing(profiles: Profiles, store: Store) -> None:
    before = store.snapshot()
    with pytest.raises(Conflict) as caught:
        profiles.clone(1, {"name": " Data science "}, ACTOR)
    assert caught.value.param == "name"
    assert store.snapshot() == before


# -- rotation (decision 19) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "ns"),
    [
        pytest.param("30d", 30 * DAY_NS, id="days"),
        pytest.param("12h", 12 * HOUR_NS, id="hours"),
        pytest.param("1h30m", 90 * 60 * 10**9, id="hours-and-minutes"),
        pytest.param("1.5h", 90 * 60 * 10**9, id="fraction"),
        pytest.param("1h", HOUR_NS, id="minimum"),
        pytest.param("365d", 365 * DAY_NS, id="maximum-days"),
        pytest.param("8760h", 365 * DAY_NS, id="maximum-hours"),
        pytest.param(HOUR_NS, HOUR_NS, id="nanoseconds-minimum"),
        pytest.param(7 * DAY_NS, 7 * DAY_NS, id="nanoseconds"),
        pytest.param(365 * DAY_NS, 365 * DAY_NS, id="nanoseconds-maximum"),
    ],
)
def test_create_rotation_interval_is_stored_as_nanoseconds_with_a_default_schedule(
    profiles: Profiles, interval: str | int, ns: int
) -> None:
    record = profiles.create({"name": "Rotating", "auto_rotation_interval": interval}, ACTOR)
    assert (record["auto_rotation_interval"], record["next_rotation_at"]) == (
        ns,
        in_(timedelta(microseconds=ns // 1000)),
    )


OUT_OF_RANGE = [
    pytest.param("59m", id="under-an-hour"),
    pytest.param("59m59.999s", id="just-under-an-hour"),
    pytest.param(HOUR_NS - 1, id="nanoseconds-under-an-hour"),
    pytest.param("366d", id="over-a-year"),
    pytest.param("8760h1ns", id="just-over-a-year"),
    pytest.param(365 * DAY_NS + 1, id="nanoseconds-over-a-year"),
    pytest.param("-2h", id="negative"),
    pytest.param(-HOUR_NS, id="negative-nanoseconds"),
]


@pytest.mark.parametrize("interval", OUT_OF_RANGE)
def test_create_rotation_interval_out_of_range_is_a_bad_request(
    profiles: Profiles, store: Store, interval: str | int
) -> None:
    before = store.snapshot()
    with pytest.raises(BadRequest) as caught:
        profiles.create({"name": "Rotating", "auto_rotation_interval": interval}, ACTOR)
    assert (caught.value.status, caught.value.param) == (400, "auto_rotation_interval")
    assert store.snapshot() == before


@pytest.mark.parametrize("interval", ["", 0, "0"], ids=["empty-string", "zero", "zero-string"])
def test_create_rotation_off(profiles: Profiles, interval: str | int) -> None:
    record = profiles.create({"name": "Still", "auto_rotation_interval": interval}, ACTOR)
    assert record["auto_rotation_interval"] == 0
    assert "next_rotation_at" not in record


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", id="utc"),
        pytest.param("2027-01-01T02:00:00+02:00", "2027-01-01T00:00:00Z", id="offset-converted"),
        pytest.param("2026-11-26T12:00:00.5Z", "2026-11-26T12:00:00.500000Z", id="half-a-second-ahead"),
    ],
)
def test_create_next_rotation_at_in_the_future_is_kept(profiles: Profiles, sent: str, kept: str) -> None:
    record = profiles.create({"name": "Rotating", "auto_rotation_interval": "30d", "next_rotation_at": sent}, ACTOR)
    assert (record["auto_rotation_interval"], record["next_rotation_at"]) == (30 * DAY_NS, kept)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"auto_rotation_interval": "30d", "next_rotation_at": NOW}, id="now"),
        pytest.param({"auto_rotation_interval": "30d", "next_rotation_at": "2026-11-26T11:59:59Z"}, id="past"),
        pytest.param(
            {"auto_rotation_interval": "30d", "next_rotation_at": "2026-11-26T13:00:00+02:00"}, id="past-offset"
        ),
        pytest.param({"next_rotation_at": "2027-01-01T00:00:00Z"}, id="without-interval"),
        pytest.param({"auto_rotation_interval": "", "next_rotation_at": "2027-01-01T00:00:00Z"}, id="interval-off"),
        pytest.param({"auto_rotation_interval": 0, "next_rotation_at": "2027-01-01T00:00:00Z"}, id="interval-zero"),
    ],
)
def test_create_next_rotation_at_in_the_past_or_without_interval_is_a_bad_request(
    profiles: Profiles, store: Store, body: dict[str, Any]
) -> None:
    before = store.snapshot()
    with pytest.raises(BadRequest) as caught:
        profiles.create({"name": "Rotating", **body}, ACTOR)
    assert (caught.value.status, caught.value.param) == (400, "next_rotation_at")
    assert store.snapshot() == before


# Profile 1 rotates every 30 days, next on 2026-12-14T09:00:00Z; profile 2 does not rotate.
@pytest.mark.parametrize(
    ("profile_id", "body", "interval", "next_at"),
    [
        pytest.param(1, {"auto_rotation_interval": "7d"}, 7 * DAY_NS, in_(timedelta(days=7)), id="changed-re-anchors"),
        pytest.param(
            1, {"auto_rotation_interval": 12 * HOUR_NS}, 12 * HOUR_NS, in_(timedelta(hours=12)), id="ns-re-anchors"
        ),
        pytest.param(
            1,
            {"auto_rotation_interval": "7d", "next_rotation_at": "2027-02-01T00:00:00Z"},
            7 * DAY_NS,
            "2027-02-01T00:00:00Z",
            id="changed-with-explicit-time",
        ),
        pytest.param(1, {"next_rotation_at": "2027-02-01T00:00:00Z"}, 30 * DAY_NS, "2027-02-01T00:00:00Z", id="moved"),
        pytest.param(1, {"auto_rotation_interval": ""}, 0, None, id="off-by-empty-string"),
        pytest.param(1, {"auto_rotation_interval": 0}, 0, None, id="off-by-zero"),
        pytest.param(1, {"auto_rotation_interval": "", "next_rotation_at": None}, 0, None, id="off-and-cleared"),
        pytest.param(
            2, {"auto_rotation_interval": "1h30m"}, 90 * 60 * 10**9, in_(timedelta(minutes=90)), id="turned-on"
        ),
        pytest.param(
            2,
            {"auto_rotation_interval": "1d", "next_rotation_at": "2026-11-26T18:00:00+01:00"},
            DAY_NS,
            "2026-11-26T17:00:00Z",
            id="turned-on-with-time",
        ),
    ],
)
def test_update_rotation(
    profiles: Profiles, store: Store, profile_id: int, body: dict[str, Any], interval: int, next_at: str | None
) -> None:
    before = copy.deepcopy(stored(store, profile_id))

    result = profiles.update(profile_id, body, ACTOR)

    expected = {k: v for k, v in before.items() if k != "next_rotation_at"}
    expected |= {"auto_rotation_interval": interval, "version": before["version"] + 1, "updated_at": NOW}
    if next_at is not None:
        expected["next_rotation_at"] = next_at
    assert result == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"auto_rotation_interval": None}, id="interval-null-leaves-it"),
        pytest.param({"next_rotation_at": None}, id="clear-while-off"),
        pytest.param({"auto_rotation_interval": "", "next_rotation_at": None}, id="off-while-off"),
    ],
)
def test_update_rotation_without_change(profiles: Profiles, store: Store, body: dict[str, Any]) -> None:
    before = copy.deepcopy(stored(store, 2))
    assert profiles.update(2, body, ACTOR) == before


@pytest.mark.parametrize(
    ("profile_id", "body", "param"),
    [
        pytest.param(1, {"auto_rotation_interval": "30m"}, "auto_rotation_interval", id="too-short"),
        pytest.param(1, {"auto_rotation_interval": "400d"}, "auto_rotation_interval", id="too-long"),
        pytest.param(1, {"next_rotation_at": None}, "next_rotation_at", id="clear-while-on"),
        pytest.param(
            1,
            {"auto_rotation_interval": "7d", "next_rotation_at": None},
            "next_rotation_at",
            id="clear-with-new-interval",
        ),
        pytest.param(1, {"next_rotation_at": "2026-11-01T00:00:00Z"}, "next_rotation_at", id="past"),
        pytest.param(1, {"next_rotation_at": NOW}, "next_rotation_at", id="now"),
        pytest.param(2, {"next_rotation_at": "2027-01-01T00:00:00Z"}, "next_rotation_at", id="time-while-off"),
        pytest.param(
            1,
            {"auto_rotation_interval": "", "next_rotation_at": "2027-01-01T00:00:00Z"},
            "next_rotation_at",
            id="time-turning-off",
        ),
    ],
)
def test_update_rotation_refused(
    profiles: Profiles, store: Store, profile_id: int, body: dict[str, Any], param: str
) -> None:
    before = store.snapshot()
    with pytest.raises(BadRequest) as caught:
        profiles.update(profile_id, body, ACTOR)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert store.snapshot() == before


def test_rotation_anchor_follows_the_clock(profiles: Profiles, clock: FakeClock) -> None:
    clock.now = datetime(2027, 3, 1, 8, 30, tzinfo=UTC)
    record = profiles.update(2, {"auto_rotation_interval": "2h"}, ACTOR)
    assert record["next_rotation_at"] == "2027-03-01T10:30:00Z"


# -- audit rows (decision 17, for the operations above) --------------------------------------------


AUDITED: list[Any] = [
    pytest.param("create", lambda p: p.create({"name": "New"}, ACTOR), NEXT_PROFILE_ID, id="create"),
    pytest.param("update", lambda p: p.update(1, {"description": "x"}, ACTOR), 1, id="update"),
    pytest.param("activate", lambda p: p.set_active(6, True, ACTOR), 6, id="activate"),
    pytest.param("deactivate", lambda p: p.set_active(1, False, ACTOR), 1, id="deactivate"),
    pytest.param("delete", lambda p: p.delete(1, ACTOR), 1, id="delete"),
    pytest.param("clone", lambda p: p.clone(1, {"name": "Copy"}, ACTOR), NEXT_PROFILE_ID, id="clone"),
]


@pytest.mark.parametrize(("action", "operation", "profile_id"), AUDITED)
def test_each_change_appends_one_audit_row(
    profiles: Profiles,
    store: Store,
    action: str,
    operation: Callable[[Profiles], Any],
    profile_id: int,
) -> None:
    with store.atomic() as state:
        rows_before = state.history.rows()[1]
        previous = state.profiles.get(profile_id)

    operation(profiles)

    with store.atomic() as state:
        rows = state.history.rows()[1]
        current = state.profiles.get(profile_id)
    assert rows[:-1] == rows_before
    row = rows[-1]
    assert (row["action"], row["access_profile_id"], row["actor"], row["created_at"]) == (
        action,
        profile_id,
        ACTOR,
        NOW,
    )
    assert (row["previous_values"], row["new_values"]) == (
        # Compact JSON text, as the upstream's Go encoder writes it.
        None if previous is None else json.dumps(previous, ensure_ascii=False, separators=(",", ":")),
        None if current is None else json.dumps(current, ensure_ascii=False, separators=(",", ":")),
    )


def test_clone_audit_row_names_the_source(profiles: Profiles, store: Store) -> None:
    profiles.clone(3, {"name": "Copy"}, ACTOR)
    with store.atomic() as state:
        assert json.loads(state.history.rows()[1][-1]["metadata"]) == {"source_profile_id": 3}


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda p: p.update(1, {}, ACTOR), id="empty-update"),
        pytest.param(
            lambda p: p.update(1, {"description": p.get(1)["access_profile"]["description"]}, ACTOR), id="same-value"
        ),
        pytest.param(lambda p: p.set_active(1, True, ACTOR), id="activate-active"),
        pytest.param(lambda p: p.set_active(6, False, ACTOR), id="deactivate-inactive"),
    ],
)
def test_no_audit_row_without_a_change(profiles: Profiles, store: Store, operation: Callable[[Profiles], Any]) -> None:
    with store.atomic() as state:
        rows = state.history.rows()[1]
    operation(profiles)
    with store.atomic() as state:
        assert state.history.rows()[1] == rows
