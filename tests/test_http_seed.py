"""The seed document's rules for PUT /api/access-profiles/{id}, through HTTP on both path families."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import CANONICAL, PREFIXES, Api, error_of

# The example object printed in the seed document (PUT /api/access-profiles/{id}), copied verbatim.
SEED_EXAMPLE = Path(__file__).resolve().parent / "data" / "seed-put-example.json"
CHANGING = {"version", "updated_at"}


def seed_example() -> dict[str, Any]:
    return json.loads(SEED_EXAMPLE.read_text(encoding="utf-8"))["access_profile"]  # type: ignore[no-any-return]


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


@PREFIXES
def test_partial_update_changes_only_the_fields_sent(api: Api, prefix: str) -> None:
    before = api.profile(1)
    response = api.put(f"{prefix}/1", {"name": "Platform engineering (EU)"})
    assert response.status_code == 200
    after = response.json["access_profile"]
    assert after["name"] == "Platform engineering (EU)"
    assert without(after, "name", *CHANGING) == without(before, "name", *CHANGING)
    assert api.profile(1) == after


@PREFIXES
@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["eu"]},
        {"description": "Only the description"},
        {"calendar_aligned": False},
        {"mcp_servers": [{"mcp_server_id": "linear"}]},
        {"budgets": [{"max_limit": 10, "reset_duration": "1d"}]},
    ],
    ids=["tags", "description", "calendar_aligned", "mcp_servers", "budgets"],
)
def test_omitted_fields_keep_their_values(api: Api, prefix: str, body: dict[str, Any]) -> None:
    before = api.profile(1)
    after = api.put(f"{prefix}/1", body).json["access_profile"]
    (field,) = body
    assert without(after, field, *CHANGING) == without(before, field, *CHANGING)
    assert after[field] != before[field]


@PREFIXES
def test_rate_limit_null_clears_and_omitting_it_keeps_it(api: Api, prefix: str) -> None:
    assert "rate_limit" in api.profile(1)
    kept = api.put(f"{prefix}/1", {"name": "Still limited"}).json["access_profile"]
    assert kept["rate_limit"] == api.profile(1)["rate_limit"]
    cleared = api.put(f"{prefix}/1", {"rate_limit": None})
    assert cleared.status_code == 200
    assert "rate_limit" not in cleared.json["access_profile"]
    assert "rate_limit" not in api.profile(1)
    api.put(f"{prefix}/1", {"tags": ["later"]})
    assert "rate_limit" not in api.profile(1)


@PREFIXES
@pytest.mark.parametrize(
    ("field", "limit", "item"),
    [
        ("provider_configs", 100, lambda i: {"provider_name": f"provider-{i}"}),
        ("budgets", 100, lambda i: {"max_limit": i + 1, "reset_duration": "1M"}),
        ("tags", 50, lambda i: f"tag-{i}"),
    ],
    ids=["provider_configs", "budgets", "tags"],
)
def test_update_enforces_size_limits(api: Api, prefix: str, field: str, limit: int, item: Any) -> None:
    before = api.profile(2)
    over = api.put(f"{prefix}/2", {field: [item(i) for i in range(limit + 1)]})
    assert over.status_code == 400
    error = error_of(over)
    assert error["param"] == field
    assert f"at most {limit} items, got {limit + 1}" in error["message"]
    assert api.profile(2) == before
    at_limit = api.put(f"{prefix}/2", {field: [item(i) for i in range(limit)]})
    assert at_limit.status_code == 200
    assert len(at_limit.json["access_profile"][field]) == limit


@PREFIXES
def test_update_limits_budgets_inside_a_provider_config(api: Api, prefix: str) -> None:
    budgets = [{"max_limit": 1, "reset_duration": "1d"}] * 101
    response = api.put(f"{prefix}/2", {"provider_configs": [{"provider_name": "openai", "budgets": budgets}]})
    assert response.status_code == 400
    assert error_of(response)["param"] == "provider_configs[0].budgets"


@PREFIXES
def test_create_accepts_any_size(api: Api, prefix: str) -> None:
    body = {
        "name": "Everything everywhere",
        "provider_configs": [{"provider_name": f"provider-{i}"} for i in range(150)],
        "budgets": [{"max_limit": 5, "reset_duration": "1d"} for _ in range(150)],
        "tags": [f"tag-{i}" for i in range(80)],
    }
    response = api.post(prefix, body)
    assert response.status_code == 201
    created = response.json["access_profile"]
    assert (len(created["provider_configs"]), len(created["budgets"]), len(created["tags"])) == (150, 150, 80)


@PREFIXES
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_names_are_limited_to_255_characters(api: Api, prefix: str, method: str) -> None:
    path = prefix if method == "POST" else f"{prefix}/3"
    too_long = api.request(method, path, {"name": "n" * 256})
    assert too_long.status_code == 400
    assert error_of(too_long)["param"] == "name"
    assert api.request(method, path, {"name": "n" * 255}).status_code in (200, 201)


@PREFIXES
def test_each_change_bumps_the_version_and_is_kept_in_history(api: Api, prefix: str) -> None:
    start = api.profile(4)["version"]
    for i in range(3):
        response = api.put(f"{prefix}/4", {"description": f"revision {i}"})
        assert response.json["access_profile"]["version"] == start + i + 1
    unchanged = api.put(f"{prefix}/4", {"description": "revision 2"})
    assert unchanged.json["access_profile"]["version"] == start + 3
    history = api.mock.store.snapshot().history.versions(4)
    assert [row["version"] for row in history] == [start, start + 1, start + 2, start + 3]
    assert json.loads(history[-1]["snapshot"]) == api.profile(4)
    assert history[-1]["changed_by"] == "token ...oken"


@PREFIXES
def test_the_seed_example_object_is_refused_naming_what_the_newest_schema_requires(api: Api, prefix: str) -> None:
    """The seed's example omits reset_duration and action, required in the newest schema."""
    before = api.profile(1)
    response = api.put(f"{prefix}/1", seed_example())
    assert response.status_code == 400
    message = error_of(response)["message"]
    for field in (
        "provider_configs[0].budgets[0].reset_duration",
        "budgets[0].reset_duration",
        "mcp_tool_overrides[0].action",
    ):
        assert re.search(re.escape(field) + r": this field is required", message), field
    assert api.profile(1) == before


@PREFIXES
def test_the_seed_example_object_completed_is_applied_with_read_only_fields_ignored(api: Api, prefix: str) -> None:
    body = seed_example()
    for budget in body["budgets"] + body["provider_configs"][0]["budgets"]:
        budget["reset_duration"] = "1M"
    body["mcp_tool_overrides"][0]["action"] = "exclude"
    before = api.profile(1)
    response = api.put(f"{prefix}/1", body)
    assert response.status_code == 200
    after = response.json["access_profile"]
    assert after["id"] == 1
    assert after["version"] == before["version"] + 1
    assert after["created_at"] == before["created_at"]
    assert after["name"] == body["name"]
    assert after["budgets"][0]["current_usage"] == 0  # "<string>" is not an existing budget id
    assert after["budgets"][0]["scope"] == "total"
    assert after["provider_configs"][0]["id"] != 123
    assert after["provider_configs"][0]["budgets"][0]["scope"] == "provider:<string>"
    assert set(after) >= set(body) - {"rate_limit"}


@PREFIXES
def test_location_of_a_new_profile_stays_in_the_family_used(api: Api, prefix: str) -> None:
    created = api.post(prefix, {"name": "Located"})
    assert created.headers["Location"] == f"{prefix}/{created.json['access_profile']['id']}"
    cloned = api.post(f"{prefix}/1/clone", {"name": "Located too"})
    assert cloned.headers["Location"] == f"{prefix}/{cloned.json['access_profile']['id']}"
    assert api.get(created.headers["Location"]).status_code == 200


def test_both_families_share_one_store(api: Api) -> None:
    created = api.post("/api/access-profiles", {"name": "Made on the legacy path"}).json["access_profile"]
    assert api.get(f"{CANONICAL}/{created['id']}").status_code == 200
    assert api.delete(f"{CANONICAL}/{created['id']}").status_code == 200
    assert api.get(f"/api/access-profiles/{created['id']}").status_code == 404
