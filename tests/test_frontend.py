"""What a frontend developer uses: CORS, Prefer, chaos, snapshots, the state, the control token, logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from conftest import CANONICAL, LEGACY, Api, error_of
from flask import Flask

from mockserver import BackgroundServer

ORIGIN = "http://localhost:5173"
AUTH = {"Authorization": "Bearer ui"}


# -- CORS ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{CANONICAL}/1", "/api/users/u-erin/access-profiles", "/__mock/health"])
def test_a_preflight_is_answered_with_the_allow_headers(api: Api, path: str) -> None:
    response = api.client.open(
        path,
        method="OPTIONS",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type, prefer",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert all(h in allowed for h in ("authorization", "content-type", "prefer"))
    assert api.mock.journal.entries() == []  # the API never saw it


def test_answers_to_a_browser_carry_the_cors_headers(api: Api) -> None:
    created = api.post(CANONICAL, {"name": "From the browser"}, headers={"Origin": ORIGIN})
    assert created.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in created.headers["Access-Control-Expose-Headers"]
    refused = api.client.get(f"{CANONICAL}/1", headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_a_plain_options_is_still_405(api: Api) -> None:
    response = api.client.open(f"{CANONICAL}/1", method="OPTIONS", headers={"Origin": ORIGIN})
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, PUT"


def test_origins_can_be_limited_or_cors_turned_off(make_app: Callable[..., Flask]) -> None:
    limited = Api(make_app(cors_origins="http://app.test, http://other.test"))
    assert (
        limited.get(f"{CANONICAL}/1", headers={"Origin": "http://app.test"}).headers["Access-Control-Allow-Origin"]
        == "http://app.test"
    )
    foreign = limited.get(f"{CANONICAL}/1", headers={"Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    off = Api(make_app(cors_origins=""))
    assert "Access-Control-Allow-Origin" not in off.get(f"{CANONICAL}/1", headers={"Origin": ORIGIN}).headers


# -- Prefer ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [CANONICAL, LEGACY])
def test_prefer_code_answers_that_documented_response(api: Api, prefix: str) -> None:
    before = api.mock.store.snapshot()
    conflict = api.put(f"{prefix}/1", {"name": "x"}, headers={"Prefer": "code=409"})
    assert conflict.status_code == 409
    assert error_of(conflict)["type"] == "conflict"
    unauthorized = api.client.get(f"{prefix}/1", headers={"Prefer": "code=401"})
    assert unauthorized.status_code == 401 and unauthorized.headers["WWW-Authenticate"]
    assert api.mock.store.snapshot() == before  # a chosen answer changes nothing
    assert list(api.mock.violations) == []  # and it is checked like any other


def test_prefer_example_picks_a_named_example(api: Api) -> None:
    response = api.get(f"{CANONICAL}/audit-logs", headers={"Prefer": "example=rows"})
    assert response.status_code == 200
    assert response.json["audit_logs"][0]["action"] == "update"
    cycles = api.put(
        "/api/governance/users/u-frank/access-profiles/4/budgets/b/override",
        {"amount": 1, "mode": "forever"},
        headers={"Prefer": "code=200, example=overridden"},
    )
    assert cycles.json["budget"]["override_mode"] == "cycles"


def test_the_same_knobs_work_as_query_parameters(api: Api) -> None:
    assert api.get(f"{CANONICAL}/1?__code=404").status_code == 404
    assert api.get(f"{CANONICAL}?__example=page").json["count"] == 1


@pytest.mark.parametrize(
    ("prefer", "message"),
    [
        ("code=418", "code=418 is not documented for getAccessProfile; documented: 200, 400, 401, 403, 404, 500, 503"),
        (
            "example=nope",
            "example='nope' is not an example of the 200 answer of getAccessProfile; its examples: detail",
        ),
        ("delay=soon", "delay='soon': expected an integer from 0 to 60000"),
        ("fault=explode", "fault='explode' is not supported; use one of empty, truncate"),
    ],
    ids=["undocumented-code", "unknown-example", "bad-delay", "unknown-fault"],
)
def test_a_bad_preference_is_400_naming_what_is_possible(api: Api, prefer: str, message: str) -> None:
    response = api.get(f"{CANONICAL}/1", headers={"Prefer": prefer})
    assert response.status_code == 400
    assert error_of(response) == {"type": "invalid_request", "message": message, "param": "Prefer"}


def test_prefer_delay_slows_the_answer(api: Api) -> None:
    started = time.perf_counter()
    assert api.get(f"{CANONICAL}/1", headers={"Prefer": "delay=300"}).status_code == 200
    assert time.perf_counter() - started >= 0.3


@pytest.fixture
def served(make_app: Callable[..., Flask]) -> Iterator[str]:
    with BackgroundServer(make_app()) as server:
        yield server.url


def test_fault_empty_closes_the_connection_without_an_answer(served: str) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{served}{CANONICAL}/1", headers={**AUTH, "Prefer": "fault=empty"}, timeout=5)
    assert requests.get(f"{served}{CANONICAL}/1", headers=AUTH, timeout=5).status_code == 200


def test_fault_truncate_breaks_the_connection_in_the_middle_of_the_body(served: str) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{served}{CANONICAL}/1?__fault=truncate", headers=AUTH, timeout=5)


def test_chaos_flags_answer_documented_errors_repeatably(make_app: Callable[..., Flask]) -> None:
    def statuses() -> list[int]:
        api = Api(make_app(error_rate=0.5, seed=7))
        return [api.get(f"{CANONICAL}/1").status_code for _ in range(40)]

    first = statuses()
    assert set(first) == {200, 500} and 8 <= first.count(500) <= 32
    assert statuses() == first


def test_latency_flag_delays_every_answer(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(latency_ms=150))
    started = time.perf_counter()
    api.get(f"{CANONICAL}/1")
    assert time.perf_counter() - started >= 0.15


# -- control API: snapshots, state, token ------------------------------------------------------------


def test_named_snapshots_save_list_restore_and_delete(api: Api) -> None:
    client = api.client
    saved = client.post("/__mock/snapshots/before-demo")
    assert saved.status_code == 201 and saved.json["profiles"] == 10
    api.post(CANONICAL, {"name": "Demo profile"})
    api.delete(f"{CANONICAL}/9")
    client.post("/__mock/snapshots/after-demo")
    listed = client.get("/__mock/snapshots").json["snapshots"]
    assert [(s["name"], s["profiles"]) for s in listed] == [("after-demo", 10), ("before-demo", 10)]
    restored = client.post("/__mock/snapshots/before-demo/restore")
    assert restored.status_code == 200
    names = [p["name"] for p in api.get(f"{CANONICAL}?limit=100").json["access_profiles"]]
    assert "Demo profile" not in names and "Executive assistants" in names
    assert client.delete("/__mock/snapshots/after-demo").status_code == 200
    assert client.post("/__mock/snapshots/after-demo/restore").status_code == 404
    assert client.delete("/__mock/snapshots/after-demo").status_code == 404


def test_the_state_endpoint_shows_everything(api: Api) -> None:
    state = api.client.get("/__mock/state").json
    assert len(state["profiles"]) == 10 and len(state["roles"]) == 7 and len(state["user_copies"]) == 4
    assert {"versions", "audit", "users", "virtual_keys", "role_attachments", "counters"} <= set(state)


def test_the_control_token_guards_every_control_route(make_app: Callable[..., Flask]) -> None:
    client = make_app(control_token="s3cret").test_client()
    for method, path in (("GET", "/__mock/health"), ("POST", "/__mock/reset"), ("GET", "/__mock/state")):
        refused = client.open(path, method=method)
        assert refused.status_code == 401 and error_of(refused)["type"] == "unauthorized"
        assert client.open(path, method=method, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.open(path, method=method, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # The API itself keeps its own authentication.
    assert client.get(f"{CANONICAL}/1", headers=AUTH).status_code == 200
    # The served spec only shows the contract: it stays open, as the CLI's help says.
    assert client.get("/openapi.json").status_code == 200


# -- logs ------------------------------------------------------------------------------------------------


def test_one_log_line_per_request_explains_refusals(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mockserver.requests"):
        api.get(f"{CANONICAL}/1")
        api.put(f"{CANONICAL}/1", {"name": "n" * 256})
    lines = [r.getMessage() for r in caplog.records if r.name == "mockserver.requests"]
    assert len(lines) == 2
    assert lines[0].startswith(f"GET {CANONICAL}/1 getAccessProfile 200 ")
    assert lines[1].startswith(f"PUT {CANONICAL}/1 updateAccessProfile 400 ")
    assert lines[1].endswith("ms - name: expected at most 255 characters, got 256")
    assert api.mock.journal.entries()[0].duration_ms > 0
