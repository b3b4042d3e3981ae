"""Isolated sessions in-process: how a request names one, what each keeps apart, the bounds, the
control token, and the state file."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CANONICAL, FIXTURE_COUNTS, Api, error_of
from flask import Flask
from werkzeug.test import TestResponse

from mockserver import Settings, create_app
from mockserver.server.sessions import Sessions
from mockserver.storage.sqlite import SqliteState

HEADER = "X-Mockserver-Session"
TOKEN = {"Authorization": "Bearer control-secret"}


class In(Api):
    """An API client working in one session (through the header)."""

    def __init__(self, app: Flask, session: str) -> None:
        super().__init__(app)
        self.session = session

    def request(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> TestResponse:
        headers = {HEADER: self.session, **kwargs.pop("headers", {})}
        return super().request(method, path, json_body, headers=headers, **kwargs)

    def control(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self.client.open(path, method=method, headers={HEADER: self.session, **kwargs.pop("headers", {})})


def names(api: Api) -> list[str]:
    return [p["name"] for p in api.get(f"{CANONICAL}?limit=100").json["access_profiles"]]


def registry(app: Flask) -> Sessions:
    return app.extensions["mockserver.sessions"]  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# -- naming a session ---------------------------------------------------------------------------------


def test_each_session_starts_from_the_fixtures_and_keeps_its_own_ids(api: Api) -> None:
    default_before = api.client.get("/__mock/state").json
    one, two = In(api.app, "one"), In(api.app, "two")
    assert one.post(CANONICAL, {"name": "Only in one"}).json["access_profile"]["id"] == 11
    assert one.post(CANONICAL, {"name": "Also in one"}).json["access_profile"]["id"] == 12
    # Another session's counters did not move: its first profile also gets 11.
    assert two.post(CANONICAL, {"name": "Only in two"}).json["access_profile"]["id"] == 11
    assert two.put(f"{CANONICAL}/1", {"name": "Renamed in two"}).status_code == 200
    assert one.delete(f"{CANONICAL}/3").status_code == 200

    fixtures = names(api)
    assert names(one) == [n for n in fixtures if n != fixtures[2]] + ["Only in one", "Also in one"]
    assert names(two) == ["Renamed in two", *fixtures[1:], "Only in two"]
    assert one.get(f"{CANONICAL}/1").json["access_profile"]["version"] == api.profile(1)["version"]
    assert api.client.get("/__mock/state").json == default_before  # the default state is untouched


def test_the_header_a_path_prefix_and_a_cookie_name_the_same_session(api: Api) -> None:
    api.post(CANONICAL, {"name": "By header"}, headers={HEADER: "w1"})
    prefixed = api.post(f"/__session/w1{CANONICAL}", {"name": "By prefix"})
    # A Location keeps the prefix, so a client that follows it stays in the session.
    assert prefixed.headers["Location"] == f"/__session/w1{CANONICAL}/12"
    assert api.get(prefixed.headers["Location"]).json["access_profile"]["name"] == "By prefix"
    # Refusals explained by openapi-core (which matches the URL against the spec's servers) read the same.
    refused = api.put(f"/__session/w1{CANONICAL}/1", {"name": "n" * 256})
    assert error_of(refused)["message"] == "name: expected at most 255 characters, got 256"
    api.client.set_cookie("mockserver_session", "w1")
    assert names(api)[-2:] == ["By header", "By prefix"]
    # The header beats the cookie; the default state is where neither names a session.
    assert names(api) != names(In(api.app, "w2"))
    api.client.delete_cookie("mockserver_session")
    assert len(names(api)) == 10


@pytest.mark.parametrize(
    ("how", "param"),
    [
        pytest.param({"headers": {HEADER: "two words"}}, HEADER, id="header"),
        pytest.param({"headers": {HEADER: ""}}, HEADER, id="empty-header"),
        pytest.param({"headers": {HEADER: "-starts-with-a-dash"}}, HEADER, id="first-character"),
        pytest.param({"headers": {HEADER: "x" * 65}}, HEADER, id="too-long"),
        pytest.param({"cookie": "a/b"}, "mockserver_session", id="cookie"),
        pytest.param({"prefix": "/__session/caf%C3%A9"}, "path", id="prefix"),
    ],
)
def test_a_bad_session_name_is_a_400_naming_where_it_came_from(api: Api, how: dict[str, Any], param: str) -> None:
    if "cookie" in how:
        api.client.set_cookie("mockserver_session", how["cookie"])
    refused = api.get(how.get("prefix", "") + CANONICAL, headers=how.get("headers", {}))
    assert refused.status_code == 400
    error = error_of(refused)
    assert error["type"] == "invalid_request" and error["param"] == param
    assert "is not a session name: use 1 to 64 letters, digits, '.', '_' or '-'" in error["message"]
    assert registry(api.app).all() == []  # nothing was created
    (entry,) = api.mock.journal.entries()
    assert (entry.status, entry.refused_by) == (400, "session")


def test_the_longest_name_is_accepted_and_a_prefix_that_disagrees_with_the_header_is_refused(api: Api) -> None:
    longest = "a" + "-._9Z" * 12 + "bcd"
    assert len(longest) == 64
    assert api.get(CANONICAL, headers={HEADER: longest}).status_code == 200
    refused = api.get(f"/__session/one{CANONICAL}", headers={HEADER: "two"})
    assert refused.status_code == 400
    assert error_of(refused) == {
        "type": "invalid_request",
        "message": f"the path names session 'one' and {HEADER} names 'two'; name one",
        "param": HEADER,
    }


# -- what a session keeps apart -----------------------------------------------------------------------


def test_reset_snapshots_journal_and_state_are_per_session(api: Api) -> None:
    one, two = In(api.app, "one"), In(api.app, "two")
    one.post(CANONICAL, {"name": "Kept in a snapshot"})
    assert one.control("POST", "/__mock/snapshots/mine").status_code == 201
    two.post(CANONICAL, {"name": "Two's own"})
    one.delete(f"{CANONICAL}/1")

    assert one.control("GET", "/__mock/snapshots").json["snapshots"][0]["name"] == "mine"
    assert two.control("GET", "/__mock/snapshots").json == {"snapshots": []}
    assert api.client.get("/__mock/snapshots").json == {"snapshots": []}
    assert [e["operation_id"] for e in two.control("GET", "/__mock/journal").json["entries"]] == ["createAccessProfile"]
    assert api.client.get("/__mock/journal").json["entries"] == []
    assert [p["name"] for p in two.control("GET", "/__mock/state").json["profiles"]][-1] == "Two's own"

    assert one.control("POST", "/__mock/reset").json == {
        "message": "state reset to the loaded fixtures",
        "profiles": 10,
    }
    assert names(one) == names(api)
    assert names(two)[-1] == "Two's own"  # a reset in one session leaves the others as they were
    assert one.control("POST", "/__mock/snapshots/mine/restore").status_code == 200
    assert names(one) == [*names(api), "Kept in a snapshot"]
    assert one.control("POST", "/__mock/reset?empty=true").json == {"message": "state emptied", "profiles": 0}
    assert names(one) == [] and len(names(two)) == 11


def test_each_session_has_its_own_chaos(api: Api) -> None:
    assert api.client.put("/__mock/sessions/broken", json={"error_rate": 1}).status_code == 201
    broken, calm = In(api.app, "broken"), In(api.app, "calm")
    assert {broken.get(f"{CANONICAL}/1").status_code for _ in range(5)} == {500}
    assert calm.get(f"{CANONICAL}/1").status_code == 200
    assert api.get(f"{CANONICAL}/1").status_code == 200
    # A seed repeats a session's picks whatever the other sessions do in between.
    for name in ("a", "b"):
        api.client.put(f"/__mock/sessions/{name}", json={"error_rate": 0.5, "seed": 7})
    a, b = In(api.app, "a"), In(api.app, "b")
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for n in range(12):
        seen["a"].append(a.get(f"{CANONICAL}/1").status_code)
        if n % 3 == 0:
            seen["b"].append(b.get(f"{CANONICAL}/1").status_code)
    assert seen["b"] == seen["a"][: len(seen["b"])]
    assert set(seen["a"]) == {200, 500}


def test_put_shows_and_changes_a_session_and_refuses_a_bad_body(api: Api) -> None:
    created = api.client.put("/__mock/sessions/slow", json={"latency_ms": 5, "seed": 3})
    assert created.status_code == 201
    body = created.json
    assert {k: body[k] for k in ("name", "chaos", "snapshots", "journal", "violations")} == {
        "name": "slow",
        "chaos": {"latency_ms": 5, "error_rate": 0.0, "seed": 3},
        "snapshots": 0,
        "journal": 0,
        "violations": 0,
    }
    assert body["records"] == FIXTURE_COUNTS
    assert body["created_at"] == body["last_used"] and body["expires_at"] is not None
    changed = api.client.put("/__mock/sessions/slow", json={})
    assert changed.status_code == 200 and changed.json["chaos"] == {"latency_ms": 0, "error_rate": 0.0, "seed": None}
    for sent, param in [
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 60_001}, "latency_ms"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": True}, "error_rate"),
        ({"seed": "7"}, "seed"),
        ({"colour": "red"}, "colour"),
        ([1], "body"),
    ]:
        refused = api.client.put("/__mock/sessions/slow", json=sent)
        assert (refused.status_code, error_of(refused)["param"]) == (400, param), sent
    assert api.client.put("/__mock/sessions/bad%20name").json["error"]["param"] == "name"


def test_list_get_and_delete(api: Api) -> None:
    In(api.app, "b").post(CANONICAL, {"name": "x"})
    In(api.app, "a").get(CANONICAL)
    listed = api.client.get("/__mock/sessions").json
    assert [s["name"] for s in listed["sessions"]] == ["a", "b"]
    assert (listed["max_sessions"], listed["session_ttl"]) == (100, 3600)
    assert listed["sessions"][1]["records"]["profiles"] == 11 and listed["sessions"][1]["journal"] == 1
    assert api.client.get("/__mock/sessions/b").json == listed["sessions"][1]
    assert api.client.get("/__mock/health").json["sessions"] == 2
    assert api.client.delete("/__mock/sessions/b").json == {"message": "session 'b' deleted"}
    gone = api.client.get("/__mock/sessions/b")
    assert gone.status_code == 404 and error_of(gone) == {
        "type": "not_found",
        "message": "no session named 'b'",
        "param": "name",
    }
    assert api.client.delete("/__mock/sessions/b").status_code == 404
    assert names(In(api.app, "b")) == names(api)  # named again: a new session, from the fixtures


def test_entering_and_leaving_set_and_clear_the_cookie(api: Api) -> None:
    entered = api.client.get("/__mock/sessions/browser/enter")
    assert entered.status_code == 200
    assert entered.headers["Set-Cookie"] == "mockserver_session=browser; HttpOnly; Path=/; SameSite=Lax"
    assert entered.json["message"].startswith("this browser now works in session 'browser'")
    api.post(CANONICAL, {"name": "Made in the browser"})
    assert names(In(api.app, "browser"))[-1] == "Made in the browser"
    assert "Made in the browser" not in names(In(api.app, "other"))
    left = api.client.get("/__mock/sessions/browser/leave?next=/docs")
    assert (left.status_code, left.headers["Location"]) == (303, "/docs")
    assert len(names(api)) == 10
    assert api.client.get("/__mock/sessions/browser/enter?next=/docs").status_code == 303
    for bad in ("https://elsewhere.example", "//elsewhere.example", "docs"):
        refused = api.client.get(f"/__mock/sessions/browser/enter?next={bad}")
        assert (refused.status_code, error_of(refused)["param"]) == (400, "next")


def test_violations_are_kept_per_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from mockserver.server import routes
    from mockserver.spec.validation import Answer

    monkeypatch.setitem(routes.HANDLERS, "getAccessProfile", lambda mock, call, who: Answer(200, {"x": 1}))
    one = In(api.app, "one")
    assert one.get(f"{CANONICAL}/1").status_code == 500
    assert len(one.control("GET", "/__mock/violations").json["violations"]) == 1
    assert api.client.get("/__mock/sessions/one").json["violations"] == 1
    assert api.client.get("/__mock/violations").json == {"violations": [], "dropped": 0}


# -- bounds ----------------------------------------------------------------------------------------


def test_the_session_bound_is_a_429_in_the_envelope(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(max_sessions=2, session_ttl=600))
    clock = Clock()
    registry(api.app).clock = clock
    api.get(CANONICAL, headers={HEADER: "first"})
    clock.now += 100
    api.get(CANONICAL, headers={HEADER: "second"})
    refused = api.get(CANONICAL, headers={HEADER: "third"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "500"  # when the longest idle session ("first") expires
    assert error_of(refused) == {
        "type": "too_many_requests",
        "message": "this mock holds its maximum of 2 sessions (--max-sessions); delete one with "
        "DELETE /__mock/sessions/NAME, or retry in 500 s when the longest idle one expires",
        "param": HEADER,
    }
    assert api.client.put("/__mock/sessions/third").status_code == 429  # creating it explicitly, too
    assert api.get(CANONICAL, headers={HEADER: "first"}).status_code == 200  # existing ones go on working
    assert api.get(CANONICAL).status_code == 200  # and so does the default state
    api.client.delete("/__mock/sessions/second")
    assert api.get(CANONICAL, headers={HEADER: "third"}).status_code == 200


def test_max_sessions_0_turns_sessions_off(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(max_sessions=0))
    refused = api.get(CANONICAL, headers={HEADER: "any"})
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert api.get(CANONICAL).status_code == 200


def test_an_idle_session_expires_and_its_next_request_is_told(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(session_ttl=60))
    clock = Clock()
    registry(api.app).clock = clock
    one, two = In(api.app, "one"), In(api.app, "two")
    one.post(CANONICAL, {"name": "Lost when idle"})
    two.post(CANONICAL, {"name": "Kept while used"})
    for _ in range(3):
        clock.now += 30
        two.get(CANONICAL)  # a request counts as use, a read included
    assert [s["name"] for s in api.client.get("/__mock/sessions").json["sessions"]] == ["two"]
    expired = one.get(CANONICAL)
    assert expired.status_code == 410
    error = error_of(expired)
    assert error["type"] == "gone" and error["param"] == HEADER
    assert error["message"].startswith("session 'one' expired after 60 s without requests (--session-ttl)")
    assert error["message"].endswith("the next request starts it again from the fixtures")
    assert names(one) == names(api)  # it did: a new session
    assert names(two)[-1] == "Kept while used"


def test_a_control_route_starts_an_expired_session_again_without_a_410(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(session_ttl=60))
    clock = Clock()
    registry(api.app).clock = clock
    one = In(api.app, "one")
    one.post(CANONICAL, {"name": "Gone"})
    clock.now += 61
    assert one.control("POST", "/__mock/reset").status_code == 200  # a test's setup: no error to see
    assert names(one) == names(api)


def test_a_ttl_of_0_never_expires_and_negative_bounds_are_refused(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(session_ttl=0))
    clock = Clock()
    registry(api.app).clock = clock
    In(api.app, "one").post(CANONICAL, {"name": "Forever"})
    clock.now += 10**9
    assert names(In(api.app, "one"))[-1] == "Forever"
    assert api.client.get("/__mock/sessions/one").json["expires_at"] is None
    from mockserver.settings import SettingsError

    with pytest.raises(SettingsError, match="max_sessions: expected 0 or more, got -1"):
        create_app(Settings(max_sessions=-1))


# -- the control token --------------------------------------------------------------------------------


def test_with_a_control_token_creating_listing_and_deleting_need_it(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(control_token="control-secret"))
    unknown = api.get(CANONICAL, headers={HEADER: "w1"})
    assert unknown.status_code == 404
    assert error_of(unknown) == {
        "type": "not_found",
        "message": "no session 'w1' on this mock: with --control-token, sessions are created with "
        "PUT /__mock/sessions/w1 (or /__mock/sessions/w1/enter) and the control token",
        "param": HEADER,
    }
    assert api.client.put("/__mock/sessions/w1").status_code == 401
    assert api.client.get("/__mock/sessions").status_code == 401
    assert api.client.put("/__mock/sessions/w1", headers=TOKEN).status_code == 201
    # Using a session that exists needs only the API's own credentials.
    assert api.post(CANONICAL, {"name": "Made in w1"}, headers={HEADER: "w1"}).status_code == 201
    assert [s["name"] for s in api.client.get("/__mock/sessions", headers=TOKEN).json["sessions"]] == ["w1"]
    assert api.client.delete("/__mock/sessions/w1").status_code == 401
    assert api.client.delete("/__mock/sessions/w1", headers=TOKEN).status_code == 200


def test_with_a_control_token_a_browser_enters_only_a_session_that_exists(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(control_token="control-secret"))
    refused = api.client.get("/__mock/sessions/demo/enter")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="mockserver control"'
    assert (
        "creating one needs the control token: create it with PUT /__mock/sessions/demo"
        in (error_of(refused)["message"])
    )
    api.client.put("/__mock/sessions/demo", headers=TOKEN)
    assert api.client.get("/__mock/sessions/demo/enter").status_code == 200
    assert api.post(CANONICAL, {"name": "From the browser"}).status_code == 201
    api.client.get("/__mock/sessions/demo/leave")
    assert "From the browser" not in names(api)


# -- the state file -----------------------------------------------------------------------------------


def opened(path: Path, **settings: Any) -> Api:
    return Api(create_app(Settings(state=path, **settings)))


def rows_of(api: Api, session: str) -> int:
    """Rows of a session in the state file, read through the mock's own connection (it holds the file)."""
    tables = ("records", "versions", "audit", "snapshots", "snapshot_versions", "snapshot_audit")
    sql = " + ".join(f"(SELECT COUNT(*) FROM {t} WHERE session = :s)" for t in tables)  # noqa: S608
    file = api.mock.store.persistence
    assert isinstance(file, SqliteState)
    return int(file._db.execute(f"SELECT {sql}", {"s": session}).fetchone()[0])


def test_every_session_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = opened(path)
    one, two = In(first.app, "one"), In(first.app, "two")
    one.post(CANONICAL, {"name": "One's"})
    one.put(f"{CANONICAL}/1", {"description": "edited in one"})
    one.control("POST", "/__mock/snapshots/before")
    one.delete(f"{CANONICAL}/2")
    first.client.put("/__mock/sessions/two", json={"error_rate": 0.25, "seed": 4})
    two.post(CANONICAL, {"name": "Two's"})
    first.post(CANONICAL, {"name": "Default's"})
    states = {name: api.control("GET", "/__mock/state").json for name, api in (("one", one), ("two", two))}
    default = first.client.get("/__mock/state").json
    listed = first.client.get("/__mock/sessions").json["sessions"]
    first.mock.store.close()

    second = opened(path)
    again = {name: In(second.app, name) for name in ("one", "two")}
    assert second.client.get("/__mock/state").json == default
    for name, api in again.items():
        assert api.control("GET", "/__mock/state").json == states[name]
    assert [
        {k: s[k] for k in ("name", "created_at", "records", "snapshots", "chaos")}
        for s in second.client.get("/__mock/sessions").json["sessions"]
    ] == [{k: s[k] for k in ("name", "created_at", "records", "snapshots", "chaos")} for s in listed]
    versions = again["one"].get(f"{CANONICAL}/1/versions").json["versions"]
    assert json.loads(versions[-1]["snapshot"])["description"] == "edited in one"
    assert again["one"].post(CANONICAL, {"name": "Next"}).json["access_profile"]["id"] == 12  # ids continue
    assert again["one"].control("POST", "/__mock/snapshots/before/restore").status_code == 200
    assert "One's" in names(again["one"]) and len(names(again["one"])) == 11


def test_a_deleted_or_expired_session_leaves_nothing_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    api = opened(path, session_ttl=60)
    clock = Clock()
    registry(api.app).clock = clock
    for name in ("deleted", "expired"):
        In(api.app, name).post(CANONICAL, {"name": "x"})
        In(api.app, name).control("POST", "/__mock/snapshots/s")
    default_rows = rows_of(api, "")
    assert rows_of(api, "deleted") > 0 and rows_of(api, "expired") > 0
    api.client.delete("/__mock/sessions/deleted")
    clock.now += 61
    assert api.client.get("/__mock/sessions").json["sessions"] == []
    assert (rows_of(api, "deleted"), rows_of(api, "expired"), rows_of(api, "")) == (0, 0, default_rows)
    api.mock.store.close()
    assert opened(path).client.get("/__mock/sessions").json["sessions"] == []


def test_fresh_drops_every_session_and_keeps_the_default_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = opened(path)
    In(first.app, "one").post(CANONICAL, {"name": "x"})
    first.client.post("/__mock/snapshots/kept")
    first.mock.store.close()
    fresh = opened(path, fresh=True)
    assert fresh.client.get("/__mock/sessions").json["sessions"] == []
    assert rows_of(fresh, "one") == 0
    assert [s["name"] for s in fresh.client.get("/__mock/snapshots").json["snapshots"]] == ["kept"]


def test_a_session_and_the_default_state_write_one_file_without_mixing(tmp_path: Path) -> None:
    """Each write saves only its own session's rows."""
    path = tmp_path / "state.sqlite"
    api = opened(path)
    one = In(api.app, "one")
    one.get(CANONICAL)
    before = {"": rows_of(api, ""), "one": rows_of(api, "one")}
    one.put(f"{CANONICAL}/3", {"description": "one change"})
    assert (rows_of(api, ""), rows_of(api, "one")) == (before[""], before["one"] + 2)  # a version and an audit row


# -- around the sessions ------------------------------------------------------------------------------


def test_sessions_follow_a_fixture_edit_on_their_next_reset(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    from mockserver.server.reload import Reloader

    fixtures = tmp_path / "fixtures.json"
    fixtures.write_text((Path(__file__).parent.parent / "fixtures" / "default.json").read_text(), encoding="utf-8")
    app = make_app(fixtures=fixtures)
    one = In(app, "one")
    one.post(CANONICAL, {"name": "Before the edit"})
    fixtures.write_text(json.dumps({"access_profiles": [{"id": 1, "name": "Only this one"}]}), encoding="utf-8")
    reloader = Reloader(app)
    reloader._seen = {}  # noqa: SLF001 - as if both files had just changed
    reloader.check()
    assert names(one)[-1] == "Before the edit"  # kept until a reset
    one.control("POST", "/__mock/reset")
    assert names(one) == ["Only this one"]
    assert names(In(app, "new")) == ["Only this one"]


def test_sessions_follow_a_spec_edit_and_keep_their_state(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    from mockserver.server.reload import Reloader

    spec = tmp_path / "spec.yaml"
    spec.write_text((Path(__file__).parent.parent / "openapi" / "access-profiles.yaml").read_text(), encoding="utf-8")
    app = make_app(spec=spec)
    one = In(app, "one")
    one.post(CANONICAL, {"name": "Made before the edit"})
    reloader = Reloader(app)
    spec.write_text(spec.read_text(encoding="utf-8").replace("maxItems: 50", "maxItems: 2"), encoding="utf-8")
    reloader._seen = {}  # noqa: SLF001 - as if both files had just changed
    reloader.check()
    refused = one.put(f"{CANONICAL}/1", {"tags": ["a", "b", "c"]})
    assert refused.status_code == 400 and "at most 2 items" in error_of(refused)["message"]
    assert names(one)[-1] == "Made before the edit"


def test_concurrent_first_requests_of_one_session_make_one_session(app: Flask) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(n: int) -> int:
        made = In(app, "crowded").post(CANONICAL, {"name": f"concurrent {n}"})
        assert made.status_code == 201, made.json
        return int(made.json["access_profile"]["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = sorted(pool.map(create, range(16)))
    assert ids == list(range(11, 27))
    assert [s.name for s in registry(app).all()] == ["crowded"]


def test_a_browser_app_on_another_origin_may_send_the_session_header(api: Api) -> None:
    preflight = api.client.options(
        CANONICAL,
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert HEADER in preflight.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("0.0.0.0", None, True),
        ("192.168.1.20", None, True),
        ("my-laptop.local", None, True),
        ("0.0.0.0", "secret", False),
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
    ],
)
def test_a_mock_open_to_the_network_without_a_control_token_is_announced(
    host: str, token: str | None, warned: bool
) -> None:
    from mockserver.cli import exposure_warning

    warning = exposure_warning(Settings(host=host, control_token=token))
    assert (warning is not None) == warned
    if warning:
        assert warning == (
            f"mockserver: warning: listening on {host} without --control-token: anyone who can reach this port "
            "can read the whole state (/__mock/state, /__mock/journal), reset it (/__mock/reset), save and restore "
            "snapshots (/__mock/snapshots), and create, list and delete sessions (/__mock/sessions). Close them "
            "with --control-token TOKEN (or MOCKSERVER_CONTROL_TOKEN), or bind to 127.0.0.1."
        )


@pytest.mark.slow
def test_serve_prints_the_warning_at_start() -> None:
    """In a process of its own, whose serve() binds nothing: tests listen on 127.0.0.1 only."""
    code = (
        "import mockserver.server.serving as serving; serving.serve = lambda *a, **k: print('SERVED', a[1]); "
        "from mockserver.cli import main; "
        "raise SystemExit(main(['serve', '--host', '0.0.0.0', '--port', '0', '--no-watch', '--server', 'waitress']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "SERVED 0.0.0.0\n"
    assert done.stderr.startswith("mockserver: warning: listening on 0.0.0.0 without --control-token")


def test_the_log_line_names_the_session(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mockserver.requests"):
        In(api.app, "worker-3").get(f"{CANONICAL}/1")
        api.get(f"{CANONICAL}/1")
    lines = [r.getMessage() for r in caplog.records if r.name == "mockserver.requests"]
    assert lines[0].startswith(f"GET {CANONICAL}/1 getAccessProfile 200 ") and lines[0].endswith("[session worker-3]")
    assert "session" not in lines[1]
    assert [getattr(r, "request", {}).get("session") for r in caplog.records] == ["worker-3", None]
