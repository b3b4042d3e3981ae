"""Routes outside the spec: health, reset, violations, the served spec."""

from __future__ import annotations

import json

from conftest import CANONICAL, FIXTURE_COUNTS, Api, error_of

from mockserver import Violation
from mockserver.resources import bundled_spec
from mockserver.spec.document import Spec


def test_health_reports_what_is_served(api: Api) -> None:
    response = api.client.get("/__mock/health")  # no credentials needed
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok"
    assert body["service"] == "mockserver"  # how `mockserver contract` and `diff` recognise the mock
    assert body["profiles"] == 10
    assert body["auth"] == "permissive"
    assert body["strict"] is True
    assert body["violations"] == 0
    assert body["spec"]["title"] == "Bifrost Enterprise Access Profiles management API"


def test_reset_returns_to_the_fixtures(api: Api) -> None:
    original = api.get(f"{CANONICAL}?limit=100").json
    api.post(CANONICAL, {"name": "temporary"})
    api.put(f"{CANONICAL}/1", {"name": "changed"})
    api.delete(f"{CANONICAL}/2")
    response = api.client.post("/__mock/reset")
    assert response.status_code == 200
    assert response.json == {"message": "state reset to the loaded fixtures", "profiles": 10}
    assert api.get(f"{CANONICAL}?limit=100").json == original
    # Ids continue from the fixtures again, as after a fresh start.
    assert api.post(CANONICAL, {"name": "after reset"}).json["access_profile"]["id"] == 11


def test_the_served_spec_is_the_loaded_document(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.data) == Spec.load(bundled_spec()).document


def test_violations_endpoint_lists_and_clears(api: Api) -> None:
    assert api.client.get("/__mock/violations").json == {"violations": [], "dropped": 0}
    assert api.client.delete("/__mock/violations").json == {"violations": [], "dropped": 0}


def test_the_violations_kept_are_bounded_and_the_dropped_ones_counted(api: Api) -> None:
    for n in range(1005):
        api.mock.record(Violation("getAccessProfile", "GET", f"/api/governance/access-profiles/{n}", 200, ("x",)))
    listed = api.client.get("/__mock/violations").json
    assert (len(listed["violations"]), listed["dropped"]) == (1000, 5)
    assert listed["violations"][0]["path"].endswith("/5")  # the oldest kept
    assert listed["violations"][-1]["path"].endswith("/1004")
    health = api.client.get("/__mock/health").json
    assert (health["violations"], health["violations_dropped"]) == (1000, 5)
    api.client.delete("/__mock/violations")
    assert api.client.get("/__mock/health").json["violations_dropped"] == 0


def test_control_routes_answer_wrong_methods_in_the_envelope(api: Api) -> None:
    response = api.client.put("/__mock/reset")
    assert response.status_code == 405
    assert error_of(response)["type"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_journal_lists_filters_and_clears(api: Api) -> None:
    api.get(f"{CANONICAL}/1")
    api.put("/api/access-profiles/2", {"rate_limit": None})
    api.put(f"{CANONICAL}/2", {"name": ""})
    everything = api.client.get("/__mock/journal").json["entries"]
    assert [(e["method"], e["operation_id"], e["status"]) for e in everything] == [
        ("GET", "getAccessProfile", 200),
        ("PUT", "updateAccessProfileLegacy", 200),
        ("PUT", "updateAccessProfile", 400),
    ]
    assert everything[1]["body"] == {"rate_limit": None} and everything[1]["refused_by"] is None
    assert everything[2]["refused_by"] == "contract" and "name" in everything[2]["error"]
    updates = api.client.get("/__mock/journal?operation_id=updateAccessProfile&status=200").json["entries"]
    assert [e["path"] for e in updates] == ["/api/access-profiles/2"]
    assert api.client.delete("/__mock/journal").json == {"entries": []}
    cleared = api.client.get("/__mock/journal").json
    assert cleared == {**cleared, "entries": [], "oldest": 4, "last": 3, "dropped": 0}
    assert cleared["bounds"] == {"entries": 1000, "bytes": 64 * 1024 * 1024, "bytes_used": 0}


def test_journal_reads_only_what_is_newer_than_a_number(api: Api) -> None:
    api.get(f"{CANONICAL}/1")
    first = api.client.get("/__mock/journal").json
    assert (first["oldest"], first["last"], [e["seq"] for e in first["entries"]]) == (1, 1, [1])
    newer = api.client.get("/__mock/journal?after=1").json
    assert (newer["entries"], newer["oldest"], newer["last"]) == ([], 1, 1)
    api.get(f"{CANONICAL}/2")
    api.get(f"{CANONICAL}/999")
    newer = api.client.get("/__mock/journal?after=1").json
    assert [(e["seq"], e["path"], e["status"]) for e in newer["entries"]] == [
        (2, f"{CANONICAL}/2", 200),
        (3, f"{CANONICAL}/999", 404),
    ]
    assert newer["entries"][1]["refused_by"] == "rule" and newer["entries"][1]["param"] == "profile_id"
    assert isinstance(newer["entries"][0]["time"], float)
    response = api.client.get("/__mock/journal?after=soon")
    assert response.status_code == 400
    assert error_of(response) == {
        "type": "invalid_request",
        "message": "after: expected an integer, got 'soon'",
        "param": "after",
    }


def test_one_journal_entry_in_full(api: Api) -> None:
    api.client.set_cookie("session", "s3cret")  # the test client sends its own jar, not a Cookie header
    api.put(f"{CANONICAL}/1", {"name": "Renamed"})
    details = api.client.get("/__mock/journal/1").json
    assert details["request"]["body"] == {"text": '{"name": "Renamed"}', "bytes": 19, "cut": False}
    headers = dict(details["request"]["headers"])
    assert (headers["Authorization"], headers["Cookie"]) == ("Bearer ****", "****")
    assert "s3cret" not in json.dumps(details) and "dev-token" not in json.dumps(details)
    assert json.loads(details["answer"]["body"]["text"])["access_profile"]["name"] == "Renamed"
    assert details["answer"]["body"]["cut"] is False and details["refused_by"] is None
    missing = api.client.get("/__mock/journal/2")
    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found"


def test_state_counts_and_profile_list(api: Api) -> None:
    assert api.client.get("/__mock/state/counts").json == FIXTURE_COUNTS
    api.put(f"{CANONICAL}/1", {"name": "Renamed"})
    counts = api.client.get("/__mock/state/counts").json
    assert (counts["profiles"], counts["versions"], counts["audit_logs"]) == (10, 11, 11)
    profiles = api.client.get("/__mock/state/profiles").json["profiles"]
    assert profiles[0] == {"id": 1, "name": "Renamed", "version": 4, "is_active": True}
    assert [p["id"] for p in profiles] == list(range(1, 11))
    assert api.client.get("/__mock/state/profiles/1").json == api.get(f"{CANONICAL}/1").json
    missing = api.client.get("/__mock/state/profiles/99")
    assert missing.status_code == 404 and error_of(missing)["param"] == "profile_id"
