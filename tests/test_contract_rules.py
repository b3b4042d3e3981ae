"""The rules the contract checks add, on plain values: each one passes the right answer and names the wrong one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mockserver import Spec
from mockserver.contract.rules import (
    UpdateLimits,
    filter_problems,
    history_problem,
    omitted_fields_changed,
    overlapping_pages,
    oversized,
    oversized_create,
    oversized_lists,
    page_problems,
    rate_limit_kept,
    version_step,
)
from mockserver.spec.document import PageSize

UPDATE_FIELDS = frozenset({"name", "description", "tags", "budgets", "rate_limit", "auto_rotation_interval"})
BEFORE: dict[str, Any] = {
    "id": 11,
    "name": "A",
    "description": "d",
    "is_active": True,
    "version": 3,
    "tags": ["x"],
    "budgets": [],
    "rate_limit": {"id": "r", "request_max_limit": 10},
    "auto_rotation_interval": 0,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
LIMITS = UpdateLimits(tags=50, budgets=100, provider_configs=100, provider_budgets=100)
SIZES = PageSize(default=25, maximum=100)


def after(**changes: Any) -> dict[str, Any]:
    return {**BEFORE, **changes}


def test_update_limits_come_from_the_spec(spec: Spec) -> None:
    assert UpdateLimits.from_spec(spec) == LIMITS
    assert spec.page_size == SIZES


def test_oversized_names_each_list_over_its_limit() -> None:
    assert oversized({"tags": ["t"] * 50, "budgets": [{}] * 100}, LIMITS) == []
    body = {"tags": ["t"] * 51, "provider_configs": [{"provider_name": "a", "budgets": [{}] * 101}]}
    assert oversized(body, LIMITS) == ["51 tags (at most 50)", "101 budgets in provider_configs[0] (at most 100)"]
    assert oversized({"tags": "not a list", "provider_configs": [None]}, LIMITS) == []


def test_the_probe_bodies_break_one_limit_each_and_the_create_body_all_of_them() -> None:
    assert [oversized(body, LIMITS) for body in oversized_lists(LIMITS).values()] == [
        ["51 tags (at most 50)"],
        ["101 budgets (at most 100)"],
        ["101 provider_configs (at most 100)"],
        ["101 budgets in provider_configs[0] (at most 100)"],
    ]
    create = oversized_create(LIMITS)
    assert len(oversized(create, LIMITS)) == 4
    names = [config["provider_name"] for config in create["provider_configs"]]
    assert len(names) == len(set(names)) == 101


def test_an_update_may_change_only_what_it_sends() -> None:
    sent = {"tags": ["y"], "name": "B"}
    assert (
        omitted_fields_changed(BEFORE, sent, after(tags=["y"], name="B", version=4, updated_at="later"), UPDATE_FIELDS)
        == []
    )
    assert omitted_fields_changed(BEFORE, sent, after(tags=["y"], description=None), UPDATE_FIELDS) == [
        "description was 'd', is now None"
    ]
    # a field the update schema does not declare never changes, even when sent
    assert omitted_fields_changed(BEFORE, {"is_active": False}, after(is_active=False), UPDATE_FIELDS) == [
        "is_active was True, is now False"
    ]
    assert omitted_fields_changed(
        BEFORE, {}, {k: v for k, v in BEFORE.items() if k != "rate_limit"}, UPDATE_FIELDS
    ) == ["rate_limit was {'id': 'r', 'request_max_limit': 10}, is now None"]


def test_a_new_rotation_interval_may_move_the_next_rotation() -> None:
    sent = {"auto_rotation_interval": "1h"}
    moved = after(auto_rotation_interval=3600 * 10**9, next_rotation_at="2026-01-01T01:00:00Z")
    assert omitted_fields_changed(BEFORE, sent, moved, UPDATE_FIELDS) == []
    assert omitted_fields_changed(BEFORE, {}, moved, UPDATE_FIELDS) != []


def test_rate_limit_null_must_remove_the_rate_limit() -> None:
    assert rate_limit_kept({"rate_limit": None}, {k: v for k, v in BEFORE.items() if k != "rate_limit"}) is None
    assert rate_limit_kept({}, BEFORE) is None  # omitted: kept, which is right
    problem = rate_limit_kept({"rate_limit": None}, BEFORE)
    assert problem is not None and "still has rate_limit" in problem


@pytest.mark.parametrize(
    ("changed", "version", "problem"),
    [
        ({"tags": ["y"]}, 4, None),
        ({}, 3, None),
        ({"tags": ["y"]}, 3, "the update changed tags, but version went from 3 to 3; expected 4"),
        ({"tags": ["y"], "name": "B"}, 5, "the update changed name, tags, but version went from 3 to 5; expected 4"),
        ({"updated_at": "later"}, 4, "the update changed nothing, but version went from 3 to 4; expected it to stay 3"),
    ],
)
def test_a_change_bumps_the_version_by_exactly_one(changed: dict[str, Any], version: int, problem: str | None) -> None:
    assert version_step(BEFORE, after(**changed, version=version)) == problem


def page(ids: list[int], **fields: Any) -> dict[str, Any]:
    values = {"count": len(ids), "total_count": len(ids), "limit": 25, "offset": 0, **fields}
    return {"access_profiles": [{"id": i} for i in ids], **values}


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ({}, page([1, 2, 3])),
        ({"limit": 2, "offset": 1}, page([2, 3], total_count=10, limit=2, offset=1)),
        ({"limit": 0}, page([1])),
        ({"limit": -5, "offset": -1}, page([1])),
        ({"limit": 1000}, page([1], limit=100)),
        ({"offset": 50}, page([], total_count=3, offset=50)),  # past the end
        ({"limit": "x"}, page([1], limit=7)),  # not judged: a generated string the API read somehow
    ],
    ids=["defaults", "middle-page", "zero-limit", "negative", "huge-limit", "past-the-end", "odd-limit"],
)
def test_consistent_pages_pass(query: dict[str, Any], answer: dict[str, Any]) -> None:
    assert page_problems(query, answer, SIZES) == []


@pytest.mark.parametrize(
    ("query", "answer", "problem"),
    [
        ({}, page([1, 2], count=5), "count is 5, but the page holds 2 profiles"),
        ({"limit": 0}, page([1], limit=0), "limit=0 should be answered with limit 25, got 0"),
        ({"offset": -3}, page([1], offset=-3), "offset=-3 should be answered with offset 0, got -3"),
        ({"limit": 1}, page([1, 2], limit=1, total_count=2), "more than its limit 1"),
        ({}, page([2, 1]), "not in ascending id order"),
        ({}, page([1, 1]), "not in ascending id order without repeats"),
        ({}, page([1, 2], total_count=1), "total_count is 1, less than offset 0 plus the 2 profiles shown"),
        ({"limit": 5}, page([1, 2], total_count=9, limit=5), "fewer than its limit 5, although 7 more match"),
    ],
)
def test_inconsistent_pages_are_named(query: dict[str, Any], answer: dict[str, Any], problem: str) -> None:
    assert any(problem in found for found in page_problems(query, answer, SIZES)), page_problems(query, answer, SIZES)


def test_a_page_of_the_wrong_shape_is_left_to_the_schema_checks() -> None:
    assert page_problems({}, {"access_profiles": "nope"}, SIZES) == []
    assert page_problems({}, {"access_profiles": [], "count": "0"}, SIZES) == []


def test_filters_must_hold_for_every_listed_profile() -> None:
    items = [
        {"id": 1, "name": "Platform engineering", "description": None, "tags": ["prod"], "is_active": True},
        {"id": 2, "name": "Sales", "description": "Engineering support", "tags": ["eu", "prod"], "is_active": False},
    ]
    answer = {"access_profiles": items}
    assert filter_problems({"search": "ENGINEERING", "tags": " prod ,x"}, answer) == []
    assert filter_problems({"is_active": True}, answer) == ["is_active=true listed profiles [2], which are not"]
    assert filter_problems({"search": "platform"}, answer) == [
        "search='platform' listed profiles [2], whose name and description lack it"
    ]
    assert filter_problems({"tags": "eu"}, answer) == ["tags='eu' listed profiles [1], which have none of those tags"]
    # not judged: non-ASCII search text, empty filters
    assert filter_problems({"search": "ÉNGINEERING", "tags": ",", "is_active": None}, answer) == []


def test_consecutive_pages_must_not_overlap() -> None:
    assert overlapping_pages([[1, 2], [3, 4], [5]]) is None
    assert overlapping_pages([[1, 2], [], []]) is None
    assert overlapping_pages([[1, 2], [1, 2], [1, 2]]) == "consecutive pages listed ids [1, 2] | [1, 2] | [1, 2]"
    assert overlapping_pages([[1, 3], [2, 4]]) is not None


def test_history_problem_compares_the_row_with_the_answered_profile() -> None:
    profile = {"id": 4, "version": 3, "name": "x"}
    row = {"access_profile_id": 4, "version": 3, "snapshot": json.dumps(profile)}
    assert history_problem(profile, row) is None
    assert history_problem(profile, None) == "the answer holds no version row"
    stale = {**row, "version": 1}
    assert history_problem(profile, stale) == "the row is version 1 of profile 4"
    other = {**row, "snapshot": json.dumps({**profile, "name": "y"})}
    assert history_problem(profile, other) == "its snapshot differs from the profile the update answered in name"
    assert history_problem(profile, {**row, "snapshot": "{"}) == "its snapshot is not JSON text"
