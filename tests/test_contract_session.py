"""A contract run's own requests: the anchor profile, the hook that retargets changes, the cleanup, the guard."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
import schemathesis
from conftest import ADMIN_TOKEN, CANONICAL, LEGACY
from flask import Flask

from mockserver import BackgroundServer, Spec
from mockserver.contract.hooks import after_call, filter_case, prepare
from mockserver.contract.http import RequestsHttp, UnsafeRequest, WsgiHttp, guarded
from mockserver.contract.safety import NOT_AN_ID, Guard, Ownership
from mockserver.contract.session import Session, activate, active
from mockserver.resources import bundled_api_keys, bundled_spec

AUTH = f"Bearer {ADMIN_TOKEN}"


@pytest.fixture
def strict_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(api_keys=bundled_api_keys())


@pytest.fixture
def session(strict_app: Flask, spec: Spec) -> Session:
    return Session(spec, WsgiHttp(strict_app, AUTH), Ownership(token="t1", max_name_length=255))


@pytest.fixture(scope="module")
def schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(bundled_spec())


def fixture_bytes(app: Flask) -> list[bytes]:
    client = app.test_client()
    return [client.get(f"{CANONICAL}/{i}", headers={"Authorization": AUTH}).get_data() for i in range(1, 11)]


def test_the_collections_come_from_the_spec(session: Session) -> None:
    assert session.canonical_collection == CANONICAL
    assert session.collections == (CANONICAL, LEGACY)
    assert session.collection_of(CANONICAL + "/{profile_id}/clone") == CANONICAL
    assert session.collection_of("/api/users/{user_id}") is None


def test_the_anchor_is_a_rich_profile_of_the_run_created_once(session: Session) -> None:
    first = session.anchor(CANONICAL)
    assert session.anchor(LEGACY) == first
    profile = session.http.request("GET", f"{CANONICAL}/{first}").profile()
    assert profile is not None
    assert profile["name"].startswith("mockserver-contract-t1-anchor")
    assert profile["rate_limit"]["request_max_limit"] == 600 and profile["tags"] and profile["budgets"]
    assert session.ownership.live() == [first]
    session.ownership.release(first)
    assert session.anchor(CANONICAL) != first  # a deleted anchor is replaced


def test_the_hook_sends_changes_to_the_runs_own_profiles_and_marks_names(
    session: Session, schema: schemathesis.BaseSchema
) -> None:
    update = schema[CANONICAL + "/{profile_id}"]["PUT"]
    case = update.Case(path_parameters={"profile_id": 3}, body={"name": "Renamed", "rate_limit": None})
    prepare(session, case)
    anchor = case.path_parameters["profile_id"]
    assert session.ownership.is_live(anchor)
    assert case.body["name"] == "mockserver-contract-t1-Renamed"
    before = session.before(case.id)
    assert before is not None and before["id"] == anchor  # the update checks compare with this

    invalid = update.Case(path_parameters={"profile_id": "3.5"}, body={})
    prepare(session, invalid)
    assert invalid.path_parameters["profile_id"] == NOT_AN_ID


def test_a_probe_the_guard_would_refuse_is_left_out_and_recorded_as_not_sent(
    session: Session, schema: schemathesis.BaseSchema
) -> None:
    """Schemathesis probes methods a path lacks with a body of the operation defined there. An attach
    body that makes the profile a role's default would reach beyond the run's profile: the guard,
    asked before the case is sent, refuses it, and the case is left out with the guard's reason."""
    attach = schema[CANONICAL + "/{profile_id}/roles"]["POST"]
    session.guard = Guard(session.ownership, "http://api.test", session.collections)
    body = {"role_ids": [7], "is_default": True}
    probe = attach.Case(method="PATCH", path_parameters={"profile_id": 3}, body=dict(body))
    with activate(session):
        assert filter_case(None, probe) is False  # type: ignore[arg-type]
        # the attach itself goes out, with the flag turned off by the hook
        assert filter_case(None, attach.Case(path_parameters={"profile_id": 3}, body=dict(body))) is True  # type: ignore[arg-type]
    anchor = session.anchor(CANONICAL)
    assert session.not_sent == {
        f"PATCH http://api.test{CANONICAL}/{anchor}/roles: "
        "attaching with is_default or apply_to_existing would change other profiles or users": 1
    }
    assert session.refusals == []  # not a defect of the run
    assert probe.body == body and probe.path_parameters == {"profile_id": 3}  # the case itself is untouched


def test_the_hook_leaves_reads_alone(session: Session, schema: schemathesis.BaseSchema) -> None:
    case = schema[CANONICAL + "/{profile_id}"]["GET"].Case(path_parameters={"profile_id": 3})
    prepare(session, case)
    assert case.path_parameters == {"profile_id": 3}
    assert session.ownership.created() == []


def test_created_and_deleted_profiles_are_tracked_from_the_answers(
    session: Session, schema: schemathesis.BaseSchema, strict_app: Flask
) -> None:
    create = schema[LEGACY]["POST"].Case(body={"name": "mockserver-contract-t1-new"})
    response = create.call(app=strict_app, headers={"Authorization": AUTH})
    with activate(session):
        after_call(None, create, response)  # type: ignore[arg-type]
    created = response.json()["access_profile"]["id"]
    assert session.ownership.is_live(created)
    delete = schema[LEGACY + "/{profile_id}"]["DELETE"].Case(path_parameters={"profile_id": str(created)})
    response = delete.call(app=strict_app, headers={"Authorization": AUTH})
    with activate(session):
        after_call(None, delete, response)  # type: ignore[arg-type]
    assert session.ownership.owns(created) and not session.ownership.is_live(created)
    assert active() is None


def test_cleanup_deletes_every_profile_of_the_run_and_nothing_else(session: Session, strict_app: Flask) -> None:
    before = fixture_bytes(strict_app)
    anchor = session.anchor(CANONICAL)
    client = strict_app.test_client()

    def create(name: str) -> int:
        response = client.post(LEGACY, json={"name": name}, headers={"Authorization": AUTH})
        return int(response.get_json()["access_profile"]["id"])

    unseen = create("mockserver-contract-t1-unseen")  # created behind the run's back, found by its name
    other_run = create("mockserver-contract-other-run")
    cleanup = session.cleanup()
    assert sorted(cleanup.deleted) == sorted([anchor, unseen]) and cleanup.left == ()
    assert fixture_bytes(strict_app) == before
    assert client.get(f"{CANONICAL}/{other_run}", headers={"Authorization": AUTH}).status_code == 200


@pytest.fixture
def served(strict_app: Flask) -> Iterator[BackgroundServer]:
    with BackgroundServer(strict_app) as server:
        yield server


def test_the_guard_stops_requests_the_run_may_not_send(served: BackgroundServer, spec: Spec) -> None:
    ownership = Ownership(token="t2", max_name_length=255)
    guard = Guard(ownership, served.url, (CANONICAL, LEGACY))
    refused: list[str] = []
    http = RequestsHttp(served.url, AUTH)
    with guarded(guard, refused.append):
        assert http.request("GET", f"{CANONICAL}/1").status == 200
        with pytest.raises(UnsafeRequest, match="profile '1' was not created by this run"):
            requests.delete(f"{served.url}{CANONICAL}/1", headers={"Authorization": AUTH}, timeout=10)
        with pytest.raises(UnsafeRequest):
            http.request("PUT", f"{LEGACY}/2", body={"tags": []})
        created = Session(spec, http, ownership).anchor(CANONICAL)
        assert http.request("DELETE", f"{CANONICAL}/{created}").status == 200
    assert len(refused) == 2
    # outside the block, the same request goes out (and is refused by the API, not by the guard)
    assert requests.delete(f"{served.url}{CANONICAL}/1", timeout=10).status_code == 401
    http.close()  # no connection may outlive the server


def test_a_run_never_changes_users_copies_but_reads_them() -> None:
    from mockserver.contract.runner import ContractSettings, plan
    from mockserver.resources import bundled_spec

    spec = Spec.load(bundled_spec())
    ids = {op_id for _, family in plan(spec, ContractSettings(base_url="http://api.test")) for op_id in family}
    assert {"listUserAccessProfiles", "getUserAccessProfilesLegacy", "attachRolesToAccessProfile"} <= ids
    assert {"listUserVirtualKeys", "listUserVirtualKeysLegacy", "getMyVirtualKeyCreationPolicy"} <= ids
    for never in (
        "addUserVirtualKey",
        "detachUserAccessProfile",
        "updateUserAccessProfileBudgetOverride",
        "deleteUserAccessProfileBudgetOverride",
        "addUserAccessProfileVirtualKey",
        "deleteUserAccessProfileVirtualKeyLegacy",
    ):
        assert never not in ids
    families = dict(plan(spec, ContractSettings(base_url="http://api.test")))
    assert all(not spec.operations[op_id].is_alias for op_id in families["canonical"])
