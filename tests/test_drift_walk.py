"""One step of ``mockserver diff`` on both sides: filled in per side, guarded, compared."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from conftest import ADMIN_TOKEN, CANONICAL

from mockserver import Settings, create_app
from mockserver.contract.http import Answer, WsgiHttp
from mockserver.contract.safety import Guard, Ownership
from mockserver.drift.compare import Normaliser
from mockserver.drift.tour import Name, Saved, Step
from mockserver.drift.walk import COMPARED, NOT_SENT, SKIPPED, Side, Walk
from mockserver.resources import bundled_api_keys

AUTH = f"Bearer {ADMIN_TOKEN}"


class Counting(WsgiHttp):
    def __init__(self, app: Any, authorization: str | None, sent: list[str]) -> None:
        super().__init__(app, authorization)
        self.sent = sent

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None) -> Answer:
        self.sent.append(f"{method} {path}")
        return super().request(method, path, body=body, query=query)


@pytest.fixture
def sent() -> list[str]:
    return []


@pytest.fixture
def walk(sent: list[str]) -> Walk:
    ownership = Ownership(max_name_length=255, token="w1", namespace="mockserver-diff-")
    deployment_app = create_app(Settings(api_keys=bundled_api_keys()))
    mock_app = create_app(Settings())
    guard = Guard(ownership, "http://deployment.test", (CANONICAL, "/api/access-profiles"))
    deployment = Side(
        "deployment", lambda a: Counting(deployment_app, a, sent), AUTH, Normaliser(ownership.prefix), guard, ownership
    )
    mock = Side("mock", lambda a: Counting(mock_app, a, sent), AUTH, Normaliser(ownership.prefix))
    return Walk(mock, deployment, ownership.prefix)


def test_each_side_fills_in_its_own_ids_and_values(walk: Walk, sent: list[str]) -> None:
    # the mock starts from the fixtures (ids 1..10), the deployment too; give the deployment one more profile
    walk.deployment.http("run").request("POST", CANONICAL, body={"name": "someone else's"})
    sent.clear()
    body = {"name": Name("alpha"), "budgets": [{"max_limit": 1, "reset_duration": "1M"}]}
    created = walk.step("s", "1", Step("create", "POST", body=body, saves="a"), CANONICAL, "c")
    assert created.outcome == COMPARED and created.differences == []
    assert (walk.mock.profiles, walk.deployment.profiles) == ({"a": 11}, {"a": 12})
    kept = {"budgets": [{"id": Saved("a", ("budgets", 0, "id")), "max_limit": 2, "reset_duration": "1M"}]}
    updated = walk.step("s", "2", Step("keep the budget", "PUT", "/{a}", body=kept), CANONICAL, "c")
    assert updated.differences == []
    assert sent[-2:] == [f"PUT {CANONICAL}/12", f"PUT {CANONICAL}/11"]  # the deployment first
    assert updated.request == 'PUT /api/governance/access-profiles/{a}  {"budgets": [{"id": "{a}.budgets.0.id", ' + (
        '"max_limit": 2, "reset_duration": "1M"}]}'
    )


def test_a_change_the_guard_refuses_goes_to_neither_side(walk: Walk, sent: list[str]) -> None:
    result = walk.step("s", "1", Step("delete a fixture", "DELETE", "/7"), CANONICAL, "c")
    assert result.outcome == NOT_SENT
    assert result.reason == (
        "would change data the run does not own: DELETE http://deployment.test/api/governance/access-profiles/7: "
        "profile '7' was not created by this run"
    )
    assert sent == []


def test_a_step_about_a_profile_that_was_not_created_is_skipped(walk: Walk, sent: list[str]) -> None:
    result = walk.step("s", "1", Step("read it", "GET", "/{a}"), CANONICAL, "c")
    assert (result.outcome, result.reason) == (SKIPPED, "profile {a} was not created on the mock")
    read_only = Walk(walk.mock, walk.deployment, walk.prefix, read_only=True)
    assert read_only.step("s", "2", Step("create", "POST", body={"name": Name("x")}), CANONICAL, "c").outcome == SKIPPED
    assert sent == []
