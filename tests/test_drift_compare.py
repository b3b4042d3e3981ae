"""How ``mockserver diff`` makes two answers comparable, and what it calls a difference."""

from __future__ import annotations

import json

from mockserver.drift.compare import Difference, Normaliser, differences, lines, shape, side_by_side

PREFIX = "mockserver-diff-run1-"


def profile(profile_id: int, budget_ids: list[str], **fields: object) -> dict[str, object]:
    return {
        "id": profile_id,
        "name": f"{PREFIX}c-alpha",
        "version": 1,
        "budgets": [{"id": b, "max_limit": 10, "last_reset": "2026-01-01T00:00:00Z"} for b in budget_ids],
        "created_at": "2026-01-01T00:00:00.5Z",
        "updated_at": "2026-01-01T00:00:00.5Z",
        **fields,
    }


def test_ids_timestamps_and_the_prefix_get_names_that_both_sides_share() -> None:
    mock, deployment = Normaliser(PREFIX), Normaliser(PREFIX)
    mock.name_profile(11, "a")
    deployment.name_profile(9001, "a")
    ours = mock.answer(201, {"access_profile": profile(11, ["b-1", "b-2"])}, {})
    theirs = deployment.answer(201, {"access_profile": profile(9001, ["uuid-x", "uuid-y"])}, {})
    assert ours == theirs
    assert ours == {
        "status": 201,
        "body": {
            "access_profile": {
                "budgets": [
                    {"id": "<budget 1>", "last_reset": "<date-time>", "max_limit": 10},
                    {"id": "<budget 2>", "last_reset": "<date-time>", "max_limit": 10},
                ],
                "created_at": "<date-time>",
                "id": "{a}",
                "name": "<run>-c-alpha",
                "updated_at": "<date-time>",
                "version": 1,
            }
        },
    }


def test_a_budget_kept_by_id_keeps_its_name_and_a_new_one_gets_the_next() -> None:
    side = Normaliser(PREFIX)
    side.name_profile(11, "a")
    side.answer(200, {"access_profile": profile(11, ["b-1", "b-2"])}, {})
    after = side.answer(200, {"access_profile": profile(11, ["b-1", "b-3"])}, {})
    assert [b["id"] for b in after["body"]["access_profile"]["budgets"]] == ["<budget 1>", "<budget 3>"]


def test_ids_are_numbered_per_profile_so_other_data_does_not_shift_them() -> None:
    """A list that also shows somebody else's profile (on one side only) changes nothing in the
    names of the run's own budgets seen later."""
    clean, noisy = Normaliser(PREFIX), Normaliser(PREFIX)
    for side in (clean, noisy):
        side.name_profile(11, "a")
    noisy.answer(200, {"access_profiles": [profile(3, ["other-1", "other-2"])]}, {})
    assert clean.answer(200, {"access_profile": profile(11, ["b-1"])}, {}) == noisy.answer(
        200, {"access_profile": profile(11, ["b-1"])}, {}
    )


def test_json_text_is_compared_as_json_and_actors_and_messages_by_name() -> None:
    side = Normaliser(PREFIX)
    side.name_profile(11, "a")
    row = {
        "id": 40,
        "access_profile_id": 11,
        "actor": "ci-admin",
        "action": "update",
        "new_values": json.dumps(profile(11, ["b-1"])),
        "created_at": "2026-01-01T00:00:01Z",
    }
    form = side.answer(200, {"audit_logs": [row], "message": "whatever the words"}, {})
    body = form["body"]
    assert body["message"] == "<text>"
    assert body["audit_logs"][0]["actor"] == "<actor 1>"
    assert body["audit_logs"][0]["access_profile_id"] == "{a}"
    assert body["audit_logs"][0]["new_values"]["<json text>"]["budgets"][0]["id"] == "<budget 1>"


def test_an_error_is_compared_by_status_type_and_param_only() -> None:
    side = Normaliser(PREFIX)
    error = {"type": "conflict", "message": "the name is in use", "param": "name"}
    body = {"is_bifrost_error": False, "status_code": 409, "error": error}
    assert side.answer(409, body, {}) == {"status": 409, "error": {"type": "conflict", "param": "name"}}
    assert side.answer(500, None, {}) == {"status": 500, "error": "<not a BifrostError envelope>"}


def test_compared_headers_are_normalised_too() -> None:
    side = Normaliser(PREFIX)
    side.name_profile(11, "a")
    form = side.answer(201, None, {"location": "http://host:1/api/governance/access-profiles/11"}, ("Location",))
    assert form == {"status": 201, "Location": "/api/governance/access-profiles/{a}"}


def test_a_timestamp_is_compared_as_being_one() -> None:
    side = Normaliser(PREFIX)
    both = side.value({"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00.123456+00:00"})
    assert both == {"created_at": "<date-time>", "updated_at": "<date-time>"}
    assert side.value({"last_reset": "yesterday"}) == {"last_reset": "<not a date-time: yesterday>"}


def test_differences_name_the_field_and_both_values() -> None:
    mock = {"status": 200, "body": {"version": 2, "rate_limit": None, "tags": ["a"], "count": 1}}
    deployment = {"status": 200, "body": {"version": 3, "tags": ["a", "b"], "count": 1.0, "extra": True}}
    assert differences(mock, deployment) == [
        Difference("body.extra", "absent", "true"),
        Difference("body.rate_limit", "null", "absent"),
        Difference("body.tags", "1 item", "2 items"),
        Difference("body.version", "2", "3"),
    ]
    assert differences({"flag": True}, {"flag": 1}) == [Difference("flag", "true", "1")]


def test_shape_keeps_the_fields_without_the_values() -> None:
    """Other people's rows (the audit trail of all profiles) are compared by the fields they have."""
    rows = {"audit_logs": [{"id": 1, "actor": "x", "user_id": None, "new_values": "{}"}, {"id": 2}], "total_count": 2}
    assert shape(rows) == {
        "audit_logs": [{"id": "<value>", "actor": "<value>", "user_id": "<value>", "new_values": "<value>"}],
        "total_count": "<value>",
    }


def test_two_answers_side_by_side_mark_what_differs() -> None:
    left = lines({"status": 200, "body": {"name": "a", "version": 2}})
    right = lines({"status": 200, "body": {"name": "a", "version": 3}})
    shown = side_by_side(left, right, width=20)
    assert shown == [
        "HTTP 200               HTTP 200",
        "{                      {",
        '  "name": "a",           "name": "a",',
        '  "version": 2       |   "version": 3',
        "}                      }",
    ]
    assert side_by_side(["a"], ["a", "b"], width=3) == ["a     a", "    > b"]
