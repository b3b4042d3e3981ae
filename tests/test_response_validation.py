"""Every answer is checked against the spec; one that breaks it is a recorded defect."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CANONICAL, LEGACY, Api, error_of
from flask import Flask

from mockserver.server import routes
from mockserver.server.context import Mock
from mockserver.spec.validation import Answer, Call


def broken_get(change: Callable[[dict[str, Any]], None]) -> Callable[[Mock, Call, Any], Answer]:
    """A getAccessProfile handler whose answer is altered by ``change``."""

    def handler(mock: Mock, call: Call, who: Any) -> Answer:
        body = mock.profiles.get(call.path["profile_id"])
        body = {**body, "access_profile": copy.deepcopy(body["access_profile"])}
        change(body)
        return Answer(200, body)

    return handler


@pytest.fixture
def take_violations() -> Callable[[Flask], list[str]]:
    """Read and clear what an app recorded (so the test, not the teardown, judges it)."""

    def take(app: Flask) -> list[str]:
        mock: Mock = app.extensions["mockserver"]
        found = [str(v) for v in mock.violations]
        mock.violations.clear()
        return found

    return take


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["access_profile"].pop("version"), "access_profile.version: this field is required"),
        (lambda b: b["access_profile"].update(is_active="yes"), "access_profile.is_active: expected boolean"),
        (lambda b: b["access_profile"]["budgets"][0].update(reset_duration="2d"), "budgets[0].reset_duration"),
        (lambda b: b.update(user_count="none"), "user_count: expected integer"),
    ],
    ids=["missing-field", "wrong-type", "bad-enum", "bad-sibling"],
)
def test_strict_mode_turns_a_broken_answer_into_a_500_naming_it(
    api: Api, monkeypatch: pytest.MonkeyPatch, take_violations: Any, change: Any, field: str
) -> None:
    monkeypatch.setitem(routes.HANDLERS, "getAccessProfile", broken_get(change))
    response = api.get(f"{LEGACY}/1")
    assert response.status_code == 500
    error = error_of(response)
    assert error["type"] == "internal"
    assert "200 response to getAccessProfileLegacy breaks the contract" in error["message"]
    assert field in error["message"]
    (violation,) = take_violations(api.app)
    assert violation.startswith("getAccessProfileLegacy (GET /api/access-profiles/1) answered 200: ")
    assert field in violation


def test_lenient_mode_sends_the_answer_but_still_records_it(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, take_violations: Any
) -> None:
    api = Api(make_app(strict=False))
    monkeypatch.setitem(routes.HANDLERS, "getAccessProfile", broken_get(lambda b: b["access_profile"].pop("name")))
    response = api.get(f"{CANONICAL}/1")
    assert response.status_code == 200
    assert "name" not in response.json["access_profile"]
    assert len(take_violations(api.app)) == 1


def test_an_undeclared_status_is_a_violation(api: Api, monkeypatch: pytest.MonkeyPatch, take_violations: Any) -> None:
    monkeypatch.setitem(routes.HANDLERS, "getAccessProfile", lambda mock, call, who: Answer(202, {"queued": True}))
    response = api.get(f"{CANONICAL}/1")
    assert response.status_code == 500
    assert "202 response to getAccessProfile breaks the contract" in error_of(response)["message"]
    assert len(take_violations(api.app)) == 1


def test_a_missing_required_header_is_a_violation(
    api: Api, monkeypatch: pytest.MonkeyPatch, take_violations: Any
) -> None:
    def created_without_location(mock: Mock, call: Call, who: Any) -> Answer:
        profile = mock.profiles.create(call.body, who.name)
        return Answer(201, {"access_profile": profile})

    monkeypatch.setitem(routes.HANDLERS, "createAccessProfile", created_without_location)
    response = api.post(CANONICAL, {"name": "No location"})
    assert response.status_code == 500
    assert "Location" in error_of(response)["message"]
    assert len(take_violations(api.app)) == 1


def test_a_crash_in_a_handler_is_a_500_envelope_and_recorded(
    api: Api, monkeypatch: pytest.MonkeyPatch, take_violations: Any
) -> None:
    def crash(mock: Mock, call: Call, who: Any) -> Answer:
        raise KeyError("boom")

    monkeypatch.setitem(routes.HANDLERS, "listAccessProfiles", crash)
    response = api.get(CANONICAL)
    assert response.status_code == 500
    assert error_of(response) == {"type": "internal", "message": "internal error: KeyError"}
    (violation,) = take_violations(api.app)
    assert "unhandled KeyError" in violation


def test_error_answers_are_checked_too(api: Api, monkeypatch: pytest.MonkeyPatch, take_violations: Any) -> None:
    """A 404 that the operation does not declare (list has none) is caught like any other answer."""

    def not_found(mock: Mock, call: Call, who: Any) -> Answer:
        return Answer(404, {"is_bifrost_error": False, "status_code": 404, "error": {}})

    monkeypatch.setitem(routes.HANDLERS, "listAccessProfiles", not_found)
    assert api.get(CANONICAL).status_code == 500
    assert len(take_violations(api.app)) == 1


def test_normal_traffic_records_nothing(api: Api) -> None:
    api.get(CANONICAL)
    api.post(CANONICAL, {"name": "fine"})
    api.put(f"{CANONICAL}/1", {"rate_limit": None})
    api.get(f"{CANONICAL}/999")
    assert list(api.mock.violations) == []
