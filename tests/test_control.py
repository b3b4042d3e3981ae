"""Routes outside the spec: health, reset, violations, the served spec."""

from __future__ import annotations

import json

from conftest import CANONICAL, Api, error_of

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
    assert api.client.get("/__mock/violations").json == {"violations": []}
    assert api.client.delete("/__mock/violations").json == {"violations": []}


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
    assert api.client.get("/__mock/journal").json == {"entries": []}
