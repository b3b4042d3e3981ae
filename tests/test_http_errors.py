"""Bad input gets a clear BifrostError and changes nothing (contract.md section 4, decisions 1-5 and 7)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import CANONICAL, LEGACY, PREFIXES, Api, error_of
from flask import Flask
from werkzeug.test import TestResponse

from mockserver.domain.store import State

MIB = 1024 * 1024
ENVELOPE_KEYS = {"is_bifrost_error", "status_code", "error", "extra_fields"}
ERROR_KEYS = {"type", "message", "param"}

# Every operation that takes a JSON body: (method, path after the prefix, a body it accepts).
BODY_OPERATIONS = pytest.mark.parametrize(
    ("method", "suffix", "valid_body"),
    [
        ("POST", "", {"name": "Fresh profile"}),
        ("PUT", "/1", {"description": "Changed"}),
        ("POST", "/1/clone", {"name": "Fresh copy"}),
    ],
    ids=["create", "update", "clone"],
)
# Every operation on one profile: (method, path after /{profile_id}, a body it accepts).
ITEM_OPERATIONS = pytest.mark.parametrize(
    ("method", "suffix", "valid_body"),
    [
        ("GET", "", None),
        ("PUT", "", {"description": "Changed"}),
        ("DELETE", "", None),
        ("PUT", "/activate", None),
        ("PUT", "/deactivate", None),
        ("POST", "/clone", {"name": "Fresh copy"}),
    ],
    ids=["get", "update", "delete", "activate", "deactivate", "clone"],
)
# The schema-level operations on profiles: create and update take the same profile fields.
PROFILE_WRITES = pytest.mark.parametrize(
    ("method", "suffix", "base"),
    [("POST", "", {"name": "Deep"}), ("PUT", "/1", {})],
    ids=["create", "update"],
)
# Methods the spec defines on each path template (after the prefix); everything else is a 405.
ALLOWED = {
    "": {"GET", "POST"},
    "/1": {"GET", "PUT", "DELETE"},
    "/1/activate": {"PUT"},
    "/1/deactivate": {"PUT"},
    "/1/clone": {"POST"},
}
TEMPLATES = {
    "": "",
    "/1": "/{profile_id}",
    "/1/activate": "/{profile_id}/activate",
    "/1/deactivate": "/{profile_id}/deactivate",
    "/1/clone": "/{profile_id}/clone",
}
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE")
NOT_ALLOWED = [(suffix, method) for suffix, allowed in ALLOWED.items() for method in METHODS if method not in allowed]


def assert_error(response: TestResponse, status: int, kind: str, param: Any = ANY) -> dict[str, Any]:
    """The ``error`` of a BifrostError answer with this status and type; ``param=None`` means no param."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    error = error_of(response)
    assert set(response.json) == ENVELOPE_KEYS  # type: ignore[arg-type]
    assert set(error) <= ERROR_KEYS
    assert error["type"] == kind
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("param") == param
    return error


def state_of(api: Api) -> tuple[Any, State]:
    """What a refused request must leave alone: every profile as the API lists it, and the whole store
    (which also holds the version history, the audit log and the id counters)."""
    listing = api.get(f"{CANONICAL}?limit=100")
    assert listing.status_code == 200
    assert listing.json["total_count"] == listing.json["count"]  # type: ignore[index]
    return listing.json, api.mock.store.snapshot()


def assert_unchanged(api: Api, before: tuple[Any, State]) -> None:
    after = state_of(api)
    assert after[0] == before[0]
    assert after[1] == before[1]


def raw(api: Api, method: str, path: str, data: bytes, content_type: str | None = "application/json") -> TestResponse:
    headers = {"Content-Type": content_type} if content_type else {}
    return api.request(method, path, data=data, headers=headers)


def fixed_ids(app: Flask) -> Flask:
    """Make the app hand out the same budget and rate-limit ids every time, so two apps can be compared."""
    counter = iter(range(1_000_000))
    app.extensions["mockserver"].store.new_uuid = lambda: f"00000000-0000-4000-8000-{next(counter):012d}"
    return app


# -- bodies that are not a JSON object -----------------------------------------------------------


@PREFIXES
@BODY_OPERATIONS
@pytest.mark.parametrize(
    "data",
    [
        b'{"name": ',
        b'{"name": "x"} trailing',
        b"{'name': 'x'}",
        b'{"name": "x",}',
        b'{"name": "x", "budgets": [{"max_limit": NaN, "reset_duration": "1M"}]}',
        b'{"name": "x", "budgets": [{"max_limit": Infinity, "reset_duration": "1M"}]}',
        b'{"name": "x", "budgets": [{"max_limit": -Infinity, "reset_duration": "1M"}]}',
        b'{"name": "x", "budgets": [{"max_limit": 1e999, "reset_duration": "1M"}]}',
        b'{"name": "\xff\xfe broken"}',
        '{"name": "x"}'.encode("utf-16"),
    ],
    ids=[
        "truncated",
        "trailing-garbage",
        "single-quotes",
        "trailing-comma",
        "NaN",
        "Infinity",
        "-Infinity",
        "overflowing-float",
        "latin1-bytes",
        "utf16",
    ],
)
def test_unparsable_body_is_400(api: Api, prefix: str, method: str, suffix: str, valid_body: Any, data: bytes) -> None:
    before = state_of(api)
    response = raw(api, method, prefix + suffix, data)
    assert_error(response, 400, "invalid_request", "body")
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
@pytest.mark.parametrize("data", [b"[]", b'[{"name": "x"}]', b'"x"', b"3", b"true", b"null"])
def test_body_that_is_not_an_object_is_400(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any, data: bytes
) -> None:
    before = state_of(api)
    error = assert_error(raw(api, method, prefix + suffix, data), 400, "invalid_request", "body")
    assert "object" in error["message"]
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
@pytest.mark.parametrize("content_type", ["application/json", None], ids=["json", "no-content-type"])
def test_empty_body_is_400(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any, content_type: str | None
) -> None:
    before = state_of(api)
    response = raw(api, method, prefix + suffix, b"", content_type)
    assert_error(response, 400, "invalid_request", "body")
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
def test_deeply_nested_json_is_400(api: Api, prefix: str, method: str, suffix: str, valid_body: Any) -> None:
    """Valid JSON well under 1 MiB, nested deeper than a recursive parser goes: a client error, not a 500."""
    data = b'{"name": "Deep", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    before = state_of(api)
    assert_error(raw(api, method, prefix + suffix, data), 400, "invalid_request")
    assert_unchanged(api, before)


# -- media types and sizes -----------------------------------------------------------------------


@PREFIXES
@BODY_OPERATIONS
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/merge-patch+json",
        "text/json",
        None,
    ],
    ids=["text", "xml", "form", "multipart", "merge-patch", "text-json", "missing"],
)
def test_wrong_content_type_is_415(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any, content_type: str | None
) -> None:
    before = state_of(api)
    response = raw(api, method, prefix + suffix, json.dumps(valid_body).encode(), content_type)
    error = assert_error(response, 415, "unsupported_media_type", None)
    assert "application/json" in error["message"]
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
def test_form_data_is_415(api: Api, prefix: str, method: str, suffix: str, valid_body: Any) -> None:
    before = state_of(api)
    response = api.request(method, prefix + suffix, data=valid_body)  # what an HTML form would post
    assert_error(response, 415, "unsupported_media_type", None)
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_with_parameters_or_other_case_is_accepted(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any, content_type: str
) -> None:
    response = raw(api, method, prefix + suffix, json.dumps(valid_body).encode(), content_type)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def padded(body: Any, size: int) -> bytes:
    """The body as JSON, padded with insignificant whitespace to exactly ``size`` bytes."""
    data = json.dumps(body).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


@PREFIXES
@BODY_OPERATIONS
def test_body_over_one_mebibyte_is_413(api: Api, prefix: str, method: str, suffix: str, valid_body: Any) -> None:
    before = state_of(api)
    response = raw(api, method, prefix + suffix, padded(valid_body, MIB + 1))
    error = assert_error(response, 413, "payload_too_large", None)
    assert str(MIB) in error["message"]
    assert_unchanged(api, before)


@PREFIXES
@BODY_OPERATIONS
def test_body_of_exactly_one_mebibyte_is_accepted(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any
) -> None:
    response = raw(api, method, prefix + suffix, padded(valid_body, MIB))
    assert response.status_code in (200, 201), response.get_data(as_text=True)


@PREFIXES
@BODY_OPERATIONS
def test_configured_body_limit_is_enforced(
    make_app: Callable[..., Flask], prefix: str, method: str, suffix: str, valid_body: Any
) -> None:
    api = Api(make_app(max_body_bytes=64))
    before = state_of(api)
    response = raw(api, method, prefix + suffix, padded(valid_body, 65))
    error = assert_error(response, 413, "payload_too_large", None)
    assert "64" in error["message"]
    assert_unchanged(api, before)
    assert raw(api, method, prefix + suffix, padded(valid_body, 64)).status_code in (200, 201)


# -- path ids (decision 3) -----------------------------------------------------------------------


@PREFIXES
@ITEM_OPERATIONS
@pytest.mark.parametrize(
    "profile_id",
    ["abc", "1.5", "1e3", "0x1", "true", "%20"],
    ids=["word", "decimal", "exponent", "hex", "boolean", "blank"],
)
def test_non_integer_id_is_400(
    api: Api, prefix: str, method: str, suffix: str, valid_body: Any, profile_id: str
) -> None:
    before = state_of(api)
    response = api.request(method, f"{prefix}/{profile_id}{suffix}", valid_body)
    assert_error(response, 400, "invalid_request", "profile_id")
    assert_unchanged(api, before)


@PREFIXES
@ITEM_OPERATIONS
@pytest.mark.parametrize(
    "profile_id",
    [
        "0",
        "-1",
        "11",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
    ],
    ids=["zero", "negative", "next-id", "int64-max", "past-int64", "below-int64", "huge"],
)
def test_unknown_id_is_404(api: Api, prefix: str, method: str, suffix: str, valid_body: Any, profile_id: str) -> None:
    before = state_of(api)
    response = api.request(method, f"{prefix}/{profile_id}{suffix}", valid_body)
    error = assert_error(response, 404, "not_found", "profile_id")
    assert error["message"] in ("Profile not found", "Source profile not found")
    assert_unchanged(api, before)


@PREFIXES
@pytest.mark.parametrize("profile_id", ["1_0", "%D9%A1"], ids=["underscore", "arabic-indic-digit"])
def test_id_that_only_python_reads_as_an_integer_is_400(api: Api, prefix: str, profile_id: str) -> None:
    """``int()`` accepts ``1_0`` (10) and non-ASCII digits; an HTTP id must not (it would update profile 10 or 1)."""
    before = state_of(api)
    response = api.put(f"{prefix}/{profile_id}", {"description": "Changed"})
    assert_error(response, 400, "invalid_request", "profile_id")
    assert_unchanged(api, before)


@PREFIXES
def test_integer_id_too_long_to_parse_is_400(api: Api, prefix: str) -> None:
    """Beyond 4300 digits Python will not convert an integer; the mock says so instead of answering 404."""
    before = state_of(api)
    response = api.put(f"{prefix}/{'9' * 5000}", {"description": "Changed"})
    error = assert_error(response, 400, "invalid_request", "profile_id")
    assert "more than 4300 digits are not supported" in error["message"]
    assert_unchanged(api, before)


# -- unknown and read-only fields (decision 4) ----------------------------------------------------

EXTRAS_ON_CREATE = {
    "colour": "blue",
    "tags": ["team-x"],
    "provider_configs": [{"provider_name": "openai", "region": "eu", "allowed_models": ["gpt-4o"]}],
    "budgets": [{"max_limit": 5, "reset_duration": "1d", "owner": "finance"}],
    "rate_limit": {"request_max_limit": 10, "request_reset_duration": "1h", "burst": 3},
    "mcp_servers": [{"mcp_server_id": "github", "url": "https://example.invalid"}],
    "mcp_tool_overrides": [{"mcp_client_id": "github", "tool_name": "push", "action": "exclude", "why": "no"}],
}


def without_extras(value: Any) -> Any:
    """The ``EXTRAS_ON_CREATE`` body as a client that sends no unknown fields would write it."""
    unknown = {"colour", "region", "owner", "burst", "url", "why"}
    if isinstance(value, dict):
        return {k: without_extras(v) for k, v in value.items() if k not in unknown}
    if isinstance(value, list):
        return [without_extras(v) for v in value]
    return value


@PREFIXES
def test_unknown_fields_are_ignored_on_create(make_app: Callable[..., Flask], prefix: str) -> None:
    plain, extra = Api(fixed_ids(make_app())), Api(fixed_ids(make_app()))
    sent = {"name": "With extras", **EXTRAS_ON_CREATE}
    expected = plain.post(prefix, without_extras(sent))
    response = extra.post(prefix, sent)
    assert response.status_code == expected.status_code == 201
    assert response.json == expected.json
    assert extra.profile(11) == plain.profile(11)


@PREFIXES
def test_unknown_fields_are_ignored_on_update(make_app: Callable[..., Flask], prefix: str) -> None:
    plain, extra = Api(fixed_ids(make_app())), Api(fixed_ids(make_app()))
    sent = {"description": "Changed", **EXTRAS_ON_CREATE}
    expected = plain.put(f"{prefix}/1", without_extras(sent))
    response = extra.put(f"{prefix}/1", sent)
    assert response.status_code == expected.status_code == 200
    assert response.json == expected.json
    assert extra.profile(1) == plain.profile(1)


@PREFIXES
def test_unknown_fields_are_ignored_on_clone(make_app: Callable[..., Flask], prefix: str) -> None:
    plain, extra = Api(fixed_ids(make_app())), Api(fixed_ids(make_app()))
    expected = plain.post(f"{prefix}/1/clone", {"name": "Copy"})
    response = extra.post(f"{prefix}/1/clone", {"name": "Copy", "include_roles": True, "tags": ["ignored"]})
    assert response.status_code == expected.status_code == 201
    assert response.json == expected.json


@PREFIXES
@PROFILE_WRITES
@pytest.mark.parametrize(
    ("budgets", "param"),
    [
        (
            [{"max_limit": 1, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 2, "fiscal": True}}],
            "budgets[0].reset_config",
        ),
        (
            [
                {"max_limit": 1, "reset_duration": "1M"},
                {"max_limit": 1, "reset_duration": "1Q", "reset_config": {"start": 4}},
            ],
            "budgets[1].reset_config",
        ),
    ],
    ids=["first-budget", "second-budget"],
)
@pytest.mark.parametrize("inside", ["profile", "provider_config"])
def test_unknown_field_in_reset_config_is_400(
    api: Api,
    prefix: str,
    method: str,
    suffix: str,
    base: dict[str, Any],
    budgets: list[Any],
    param: str,
    inside: str,
) -> None:
    if inside == "profile":
        body = {**base, "budgets": budgets}
    else:
        body = {**base, "provider_configs": [{"provider_name": "anthropic", "budgets": budgets}]}
        param = f"provider_configs[0].{param}"
    before = state_of(api)
    error = assert_error(api.request(method, prefix + suffix, body), 400, "invalid_request", param)
    unknown = (set(budgets[-1]["reset_config"]) - {"quarter_start_month"}).pop()
    assert unknown in error["message"]
    assert_unchanged(api, before)


@PREFIXES
def test_read_only_fields_are_ignored_on_create(make_app: Callable[..., Flask], prefix: str) -> None:
    plain, extra = Api(fixed_ids(make_app())), Api(fixed_ids(make_app()))
    budget = {"max_limit": 5, "reset_duration": "1d"}
    limit = {"request_max_limit": 10, "request_reset_duration": "1h"}
    expected = plain.post(prefix, {"name": "Read-only", "budgets": [budget], "rate_limit": limit})
    response = extra.post(
        prefix,
        {
            "name": "Read-only",
            "id": 1,
            "version": 9,
            "is_active": False,
            "created_at": "2000-01-01T00:00:00Z",
            "updated_at": "2000-01-01T00:00:00Z",
            "last_rotation_at": "2000-01-01T00:00:00Z",
            "budgets": [
                {
                    **budget,
                    "id": "client-chosen",
                    "scope": "provider:openai",
                    "current_usage": 99,
                    "last_reset": "2000-01-01T00:00:00Z",
                }
            ],
            "rate_limit": {**limit, "id": "client-chosen", "token_current_usage": 5, "request_current_usage": 6},
        },
    )
    assert response.status_code == expected.status_code == 201
    assert response.json == expected.json
    profile = response.json["access_profile"]  # type: ignore[index]
    assert (profile["id"], profile["version"], profile["is_active"]) == (11, 1, True)
    assert profile["budgets"][0]["current_usage"] == 0
    assert profile["budgets"][0]["scope"] == "total"


def stored_with_read_only_changes(api: Api) -> dict[str, Any]:
    """Profile 1's budgets and rate limit as stored, with every read-only field given another value."""
    profile = api.profile(1)
    budgets = copy.deepcopy(profile["budgets"])
    for budget in budgets:
        budget.update(current_usage=0, last_reset="2000-01-01T00:00:00Z", scope="provider:openai")
    rate_limit = {**profile["rate_limit"], "id": "other", "token_current_usage": 1, "request_current_usage": 2}
    return {"budgets": budgets, "rate_limit": rate_limit}


@PREFIXES
@pytest.mark.parametrize(
    "body",
    [
        {"id": 99},
        {"version": 77},
        {"created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z"},
        {"last_rotation_at": "2000-01-01T00:00:00Z"},
        {"is_active": False},
        {"user_count": 5, "roles": [{"role_id": 1}]},
        None,
    ],
    ids=["id", "version", "timestamps", "last_rotation_at", "is_active", "detail-fields", "usage-counters"],
)
def test_read_only_fields_sent_to_update_change_nothing(api: Api, prefix: str, body: dict[str, Any] | None) -> None:
    body = body or stored_with_read_only_changes(api)
    before = state_of(api)
    stored = api.profile(1)
    response = api.put(f"{prefix}/1", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"access_profile": stored}
    assert stored["version"] == 3
    assert_unchanged(api, before)


# -- names (decision 7) --------------------------------------------------------------------------

NAME_WRITES = pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", ""), ("PUT", "/2"), ("POST", "/1/clone")],
    ids=["create", "update", "clone"],
)


@PREFIXES
@NAME_WRITES
@pytest.mark.parametrize(
    "name", ["n" * 256, "n" * 1000, "  " + "n" * 256 + "  "], ids=["256", "1000", "256-after-trimming"]
)
def test_name_over_255_characters_is_400(api: Api, prefix: str, method: str, suffix: str, name: str) -> None:
    before = state_of(api)
    error = assert_error(api.request(method, prefix + suffix, {"name": name}), 400, "invalid_request", "name")
    assert "255" in error["message"]
    assert_unchanged(api, before)


@PREFIXES
@NAME_WRITES
def test_name_of_255_characters_is_accepted(api: Api, prefix: str, method: str, suffix: str) -> None:
    name = "n" * 255
    response = api.request(method, prefix + suffix, {"name": name})
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    profile = response.json["access_profile"]  # type: ignore[index]
    assert profile["name"] == name
    assert api.profile(profile["id"]) == profile


@PREFIXES
@NAME_WRITES
def test_padded_name_length(api: Api, prefix: str, method: str, suffix: str) -> None:
    """Create and update schemas declare maxLength 255 on the name as sent; clone's declares none,
    so there only the trimmed length counts (docs/behaviour.md, names)."""
    response = api.request(method, prefix + suffix, {"name": "  " + "t" * 255 + "\t"})
    if suffix.endswith("/clone"):
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.json["access_profile"]["name"] == "t" * 255  # type: ignore[index]
    else:
        error = assert_error(response, 400, "invalid_request", "name")
        assert "at most 255 characters, got 258" in error["message"]


@PREFIXES
@NAME_WRITES
@pytest.mark.parametrize(
    "name",
    ["", " ", "   ", "\t\n", "\u3000", "\u00a0 "],
    ids=["empty", "space", "spaces", "tab-newline", "ideographic", "nbsp"],
)
def test_blank_name_is_400(api: Api, prefix: str, method: str, suffix: str, name: str) -> None:
    before = state_of(api)
    assert_error(api.request(method, prefix + suffix, {"name": name}), 400, "invalid_request", "name")
    assert_unchanged(api, before)


@PREFIXES
@pytest.mark.parametrize("suffix", ["", "/1/clone"], ids=["create", "clone"])
@pytest.mark.parametrize("body", [{}, {"description": "no name"}], ids=["empty-object", "description-only"])
def test_missing_name_is_400(api: Api, prefix: str, suffix: str, body: dict[str, Any]) -> None:
    before = state_of(api)
    assert_error(api.post(prefix + suffix, body), 400, "invalid_request", "name")
    assert_unchanged(api, before)


# -- schema errors deep in the body (decision 1) --------------------------------------------------


@PREFIXES
@PROFILE_WRITES
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"provider_configs": [{"provider_name": "a", "budgets": [{"max_limit": 1, "reset_duration": "2d"}]}]},
            "provider_configs[0].budgets[0].reset_duration",
        ),
        (
            {
                "provider_configs": [
                    {"provider_name": "a"},
                    {
                        "provider_name": "b",
                        "budgets": [
                            {"max_limit": 1, "reset_duration": "1d"},
                            {"max_limit": "300", "reset_duration": "1d"},
                        ],
                    },
                ]
            },
            "provider_configs[1].budgets[1].max_limit",
        ),
        (
            {"provider_configs": [{"provider_name": "a", "rate_limit": {"request_reset_duration": "1Q"}}]},
            "provider_configs[0].rate_limit.request_reset_duration",
        ),
        ({"provider_configs": [{"all_models_allowed": True}]}, "provider_configs[0].provider_name"),
        ({"provider_configs": [{"provider_name": 7}]}, "provider_configs[0].provider_name"),
        (
            {"provider_configs": [{"provider_name": "a", "allowed_models": ["x", 2]}]},
            "provider_configs[0].allowed_models[1]",
        ),
        (
            {"budgets": [{"max_limit": 1, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 13}}]},
            "budgets[0].reset_config.quarter_start_month",
        ),
        ({"budgets": [{"max_limit": 1}]}, "budgets[0].reset_duration"),
        ({"rate_limit": {"token_max_limit": "10"}}, "rate_limit.token_max_limit"),
        ({"rate_limit": {"token_reset_duration": "1Q"}}, "rate_limit.token_reset_duration"),
        ({"tags": ["a", "b", 5]}, "tags[2]"),
        ({"calendar_aligned": "yes"}, "calendar_aligned"),
        ({"mcp_tool_groups": [{"tool_group_id": "three"}]}, "mcp_tool_groups[0].tool_group_id"),
        (
            {"mcp_tool_overrides": [{"mcp_client_id": "g", "tool_name": "t", "action": "allow"}]},
            "mcp_tool_overrides[0].action",
        ),
    ],
    ids=[
        "provider-budget-enum",
        "second-provider-second-budget-type",
        "provider-rate-limit-enum",
        "provider-name-missing",
        "provider-name-type",
        "allowed-model-type",
        "quarter-start-month-range",
        "budget-reset-duration-missing",
        "rate-limit-type",
        "rate-limit-enum",
        "tag-type",
        "calendar-aligned-type",
        "tool-group-id-type",
        "override-action-enum",
    ],
)
def test_schema_error_names_the_field_by_path(
    api: Api, prefix: str, method: str, suffix: str, base: dict[str, Any], fields: dict[str, Any], param: str
) -> None:
    before = state_of(api)
    error = assert_error(api.request(method, prefix + suffix, {**base, **fields}), 400, "invalid_request", param)
    assert error["message"].startswith(f"{param}: ")
    assert_unchanged(api, before)


@PREFIXES
@pytest.mark.parametrize(
    ("suffix", "body", "fields"),
    [
        (
            "",
            {"name": 5, "tags": "x", "budgets": [{"max_limit": "1", "reset_duration": "1d"}]},
            ["name", "tags", "budgets[0].max_limit"],
        ),
        (
            "/1",
            {
                "description": 5,
                "provider_configs": [{"provider_name": "a", "budgets": [{"max_limit": 1}]}],
                "tags": [1],
            },
            ["description", "provider_configs[0].budgets[0].reset_duration", "tags[0]"],
        ),
        ("/1/clone", {"name": 5, "description": ["x"]}, ["name", "description"]),
    ],
    ids=["create", "update", "clone"],
)
def test_several_schema_errors_are_listed_in_one_400(
    api: Api, prefix: str, suffix: str, body: dict[str, Any], fields: list[str]
) -> None:
    method = "PUT" if suffix == "/1" else "POST"
    before = state_of(api)
    error = assert_error(api.request(method, prefix + suffix, body), 400, "invalid_request", None)
    for field in fields:
        assert f"{field}: " in error["message"]
    assert_unchanged(api, before)


# -- query parameters -----------------------------------------------------------------------------


@PREFIXES
@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=2.5", "limit"),
        ("offset=1.5", "offset"),
        ("offset=first", "offset"),
        ("is_active=maybe", "is_active"),
        ("is_active=", "is_active"),
    ],
    ids=[
        "limit-word",
        "limit-empty",
        "limit-decimal",
        "offset-decimal",
        "offset-word",
        "is_active-word",
        "is_active-empty",
    ],
)
def test_bad_query_parameter_is_400(api: Api, prefix: str, query: str, param: str) -> None:
    error = assert_error(api.get(f"{prefix}?{query}"), 400, "invalid_request", param)
    assert error["message"].startswith(f"{param}: ")


@PREFIXES
def test_several_bad_query_parameters_are_listed_in_one_400(api: Api, prefix: str) -> None:
    error = assert_error(api.get(f"{prefix}?limit=abc&is_active=maybe"), 400, "invalid_request", None)
    assert "limit: " in error["message"]
    assert "is_active: " in error["message"]


# -- methods and paths outside the spec (decision 5) ----------------------------------------------


def test_allowed_methods_table_matches_the_spec(api: Api) -> None:
    paths = api.mock.spec.document["paths"]
    for prefix in (CANONICAL, LEGACY):
        for suffix, methods in ALLOWED.items():
            item = paths[prefix + TEMPLATES[suffix]]
            assert {m.upper() for m in item if m != "parameters"} == methods


@PREFIXES
@pytest.mark.parametrize(("suffix", "method"), NOT_ALLOWED, ids=[f"{m}-{s or '/'}" for s, m in NOT_ALLOWED])
def test_method_outside_the_spec_is_405(api: Api, prefix: str, suffix: str, method: str) -> None:
    before = state_of(api)
    response = api.request(method, prefix + suffix, {"name": "Not allowed"})
    error = assert_error(response, 405, "method_not_allowed", None)
    allow = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allow == ALLOWED[suffix]
    assert method in error["message"]
    assert_unchanged(api, before)


@PREFIXES
@pytest.mark.parametrize("suffix", list(ALLOWED), ids=[s or "/" for s in ALLOWED])
def test_head_is_405_with_allow_header(api: Api, prefix: str, suffix: str) -> None:
    """HEAD is not in the spec, even where GET is; the answer is a 405 (without a body, as for any HEAD)."""
    response = api.request("HEAD", prefix + suffix)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/json"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == ALLOWED[suffix]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/governance",
        "/api/governance/nope",
        "/api/governance/access-profiles/",
        "/api/access-profiles/",
        "/api/governance/access-profiles/1/",
        "/api/governance/access-profiles/1/nope",
        "/api/governance/access-profiles/1/activate/now",
        "/API/governance/access-profiles",
        "/index.html",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_unknown_path_is_404_json(api: Api, path: str, method: str) -> None:
    before = state_of(api)
    response = api.request(method, path, {"name": "Nowhere"})
    assert_error(response, 404, "not_found")
    assert not response.get_data(as_text=True).lstrip().startswith("<")
    assert_unchanged(api, before)
