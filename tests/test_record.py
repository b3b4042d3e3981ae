"""``mockserver record``: a served mock, changed through its API, is read into a fixture file; a mock
started from that file answers every profile's GET as the original did.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import ADMIN_TOKEN, CANONICAL
from flask import Flask
from serving import run_mockserver, serve
from werkzeug.wrappers import Response

from mockserver import BackgroundServer, Settings, create_app
from mockserver.contract.http import WsgiHttp
from mockserver.contract.record import RecordError, RecordSettings, record, settings_from
from mockserver.domain.fixtures import load_seed
from mockserver.resources import bundled_api_keys
from mockserver.spec.document import Spec

TOKEN = "rec-token-4f1c9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = "/api/governance/users"


def changed_upstream() -> Flask:
    """The default mock after creates, updates, a clone, a role attached with copies, keys and a delete."""
    app = create_app(Settings())
    client = app.test_client()

    def call(method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = client.open(path, method=method, json=body, headers=AUTH)
        assert response.status_code == expect, response.get_data(as_text=True)
        return response.json

    created = call(
        "POST",
        CANONICAL,
        {
            "name": "Recorded team",
            "tags": ["recorded"],
            "provider_configs": [
                {"provider_name": "anthropic", "budgets": [{"max_limit": 50, "reset_duration": "1d"}]}
            ],
            "budgets": [{"max_limit": 500, "reset_duration": "1M"}],
            "rate_limit": {"request_max_limit": 60, "request_reset_duration": "1h"},
        },
        201,
    )["access_profile"]
    call("PUT", f"{CANONICAL}/1", {"name": "Platform (EU)", "budgets": [{"max_limit": 900, "reset_duration": "1w"}]})
    call("PUT", f"{CANONICAL}/3/deactivate")
    call("POST", f"{CANONICAL}/2/clone", {"name": "Data science (copy)"}, 201)
    call("POST", f"{CANONICAL}/{created['id']}/roles", {"role_ids": [7], "is_default": True, "apply_to_existing": True})
    call("POST", f"{USERS}/u-dave/access-profiles/8/virtual-keys", {"name": "dave-laptop"})
    call("POST", f"{CANONICAL}/8/propagate", {"fields": ["budgets"]})
    frank = call("GET", f"{USERS}/u-frank/access-profiles")["access_profiles"][0]
    call("DELETE", f"{USERS}/u-frank/access-profiles/{frank['id']}")
    call("DELETE", f"{CANONICAL}/10")
    return app


def recorded(app: Any, out: Path, users: tuple[str, ...] = ()) -> tuple[int, str]:
    """Record ``app`` (in-process) into ``out``; (exit code, what it printed)."""
    printed = io.StringIO()
    settings = RecordSettings(base_url="http://upstream.invalid", out=out, authorization=f"Bearer {TOKEN}", users=users)
    code = record(settings, printed, verify=lambda path: _loads(path), http=WsgiHttp(app, f"Bearer {TOKEN}"))
    return code, printed.getvalue()


def _loads(path: Path) -> None:
    load_seed(path, Spec.load(Settings().spec))


def every_profile(app: Flask) -> dict[int, dict[str, Any]]:
    """Each profile's GET answer, by id, with role attachments compared without their ids."""
    client = app.test_client()
    listing = client.get(f"{CANONICAL}?limit=100", headers=AUTH).json
    answers = {}
    for profile in listing["access_profiles"]:
        detail = client.get(f"{CANONICAL}/{profile['id']}", headers=AUTH).json
        detail["roles"] = [{k: v for k, v in role.items() if k != "id"} for role in detail["roles"]]
        answers[profile["id"]] = detail
    return answers


def test_a_mock_started_from_the_recording_answers_every_profile_as_the_original(tmp_path: Path) -> None:
    upstream = changed_upstream()
    upstream.extensions["mockserver"].journal.clear()
    out = tmp_path / "recorded.json"
    code, printed = recorded(upstream, out, users=("u-erin", "u-heidi"))
    assert code == 0, printed
    replayed = create_app(Settings(fixtures=out))
    original, copy = every_profile(upstream), every_profile(replayed)
    assert sorted(copy) == sorted(original) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]
    for profile_id, answer in original.items():
        assert copy[profile_id] == answer, profile_id  # ids, names, versions, budgets, rate limits, attachments
    assert {e.method for e in upstream.extensions["mockserver"].journal} == {"GET"}
    assert "profiles: page 1, 1-11 of 11" in printed
    assert "profile 11/11 (id 12): 0 roles, 1 versions" in printed
    assert "user u-dave: 1 copies" in printed  # named by the audit trail (a key added, a propagation)
    assert "Left out" not in printed
    document = json.loads(out.read_text(encoding="utf-8"))
    assert [u["id"] for u in document["users"]] == ["u-dave", "u-erin", "u-grace", "u-heidi"]
    assert document["users"][0] == {"id": "u-dave", "email": "u-dave@users.invalid", "role_ids": [], "group_ids": []}
    assert {"id": 7, "name": "executive-office", "member_ids": []} in document["roles"]


def test_the_recording_is_deterministic_and_changes_only_where_the_upstream_did(tmp_path: Path) -> None:
    upstream = changed_upstream()
    out = tmp_path / "recorded.json"
    recorded(upstream, out)
    first = out.read_bytes()
    code, printed = recorded(upstream, out)
    assert out.read_bytes() == first
    assert "(unchanged)" in printed
    assert first.endswith(b"}\n") and b'\n  "access_profiles": [\n    {\n      "auto_rotation_interval"' in first
    upstream.test_client().put(f"{CANONICAL}/4", json={"description": "changed upstream"}, headers=AUTH)
    recorded(upstream, out)
    before, after = json.loads(first), json.loads(out.read_bytes())
    changed = [p["id"] for p, q in zip(before["access_profiles"], after["access_profiles"], strict=True) if p != q]
    assert changed == [4]
    assert {k: v for k, v in before.items() if k != "access_profiles"} == {
        k: v for k, v in after.items() if k != "access_profiles"
    }


def test_copies_of_users_it_cannot_name_are_listed_as_left_out(tmp_path: Path) -> None:
    code, printed = recorded(changed_upstream(), tmp_path / "recorded.json")
    assert code == 1
    left_out = printed.split("\nLeft out (2):\n")[1].splitlines()
    gap = "1 of its 1 users' copies were not found: the API cannot list users (the audit trail names 3)"
    assert left_out == [f"  - profile {p}: {gap}; name their holders with --user" for p in (7, 11)]


def test_no_virtual_key_or_credential_is_written(tmp_path: Path) -> None:
    upstream = changed_upstream()
    out = tmp_path / "recorded.json"
    recorded(upstream, out, users=("u-erin", "u-heidi"))
    text = out.read_text(encoding="utf-8")
    keys = upstream.extensions["mockserver"].store.snapshot().virtual_keys
    assert len(keys) >= 5
    for key in keys:
        assert key["value"] not in text
    assert "sk-bf-" not in text and "****" not in text and TOKEN not in text  # neither whole nor masked


def keys_by_name(app: Any, user_id: str) -> dict[str, bool]:
    """A user's keys as listUserVirtualKeys answers them: name -> is_access_profile_managed."""
    listed = app.test_client().get(f"{USERS}/{user_id}/virtual-keys", headers=AUTH).json["virtual_keys"]
    return {k["name"]: k["is_access_profile_managed"] for k in listed}


def test_users_keys_are_recorded_and_a_mock_from_the_file_lists_the_same(tmp_path: Path) -> None:
    upstream = changed_upstream()
    upstream.test_client().post(f"{USERS}/u-dave/virtual-keys", json={"name": "dave-desktop"}, headers=AUTH)
    out = tmp_path / "recorded.json"
    code, printed = recorded(upstream, out, users=("u-erin", "u-alice", "u-heidi"))
    assert code == 0, printed
    document = json.loads(out.read_text(encoding="utf-8"))
    # A copy's key is made by the mock with the copy; the other keys are written, without values.
    assert document["virtual_keys"] == [
        {"user_id": "u-alice", "name": "alice-notebook"},
        {"user_id": "u-dave", "name": "dave-laptop", "is_access_profile_managed": True},  # minted with #20
        {"user_id": "u-dave", "name": "dave-desktop", "is_access_profile_managed": True},  # and its successor
        {"user_id": "u-erin", "name": "erin-ci-runner"},
    ]
    assert "u-alice" in [u["id"] for u in document["users"]]  # she holds a standalone key, and no copy
    assert "user u-alice: 1 virtual keys" in printed
    replayed = create_app(Settings(fixtures=out))
    for user_id in ("u-alice", "u-dave", "u-erin", "u-heidi"):
        assert keys_by_name(replayed, user_id) == keys_by_name(upstream, user_id), user_id


def test_a_deployment_without_the_key_list_is_recorded_without_users_own_keys(tmp_path: Path) -> None:
    upstream = create_app(Settings())

    def older(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"].endswith("/virtual-keys"):
            body = {"is_bifrost_error": False, "status_code": 404, "error": {"message": "no route"}}
            start_response("404 NOT FOUND", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return upstream(environ, start_response)  # type: ignore[no-any-return]

    out = tmp_path / "recorded.json"
    code, printed = recorded(older, out, users=("u-erin", "u-dave", "u-grace", "u-frank"))
    assert code == 0, printed  # not a gap in the recording: the deployment has no such list
    assert "users' own keys: the deployment does not serve listUserVirtualKeys" in printed
    assert printed.count("answered HTTP 404") == 1  # asked once, not once per user
    assert json.loads(out.read_text(encoding="utf-8"))["virtual_keys"] == []


def failing(app: Flask, fails: Callable[[str, str], bool]) -> Callable[..., Iterable[bytes]]:
    """``app``, except that requests ``fails(path, query)`` picks are answered 500 in the envelope."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if fails(environ["PATH_INFO"], environ.get("QUERY_STRING", "")):
            body = {"is_bifrost_error": False, "status_code": 500, "error": {"type": "internal", "message": "boom"}}
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return app(environ, start_response)  # type: ignore[no-any-return]

    return wsgi


def test_requests_answered_with_errors_are_listed_and_the_rest_is_recorded(tmp_path: Path) -> None:
    upstream = create_app(Settings())
    client = upstream.test_client()
    for i in range(105):
        assert client.post(CANONICAL, json={"name": f"Bulk {i:03}"}, headers=AUTH).status_code == 201
    broken = failing(
        upstream,
        lambda path, query: (
            path == f"{CANONICAL}/3"
            or path == f"{CANONICAL}/4/versions"
            or path == f"{USERS}/u-erin/access-profiles"
            or (path == CANONICAL and "offset=100" in query)
        ),
    )
    out = tmp_path / "recorded.json"
    code, printed = recorded(broken, out, users=("u-erin", "u-dave"))
    assert code == 1
    assert printed.split("\nLeft out (7):\n")[1].splitlines() == [
        "  - profiles 101-115: the list answered HTTP 500: boom",
        "  - profile 3: its detail answered HTTP 500: boom; written as the list showed it, without its role "
        "attachments",
        "  - profile 4: its versions answered HTTP 500: boom",
        "  - user 'u-erin': the list of their copies answered HTTP 500: boom",
        *(
            f"  - profile {p}: 1 of its {n} users' copies were not found: the API cannot list users (the audit "
            "trail names 0, --user names 2; the copies of 1 could not be read); name their holders with --user"
            for p, n in ((5, 1), (7, 1), (8, 2))
        ),
    ]
    document = json.loads(out.read_text(encoding="utf-8"))
    assert len(document["access_profiles"]) == 100  # the first page, profile 3 included
    assert not any(a["access_profile_id"] == 3 for a in document["role_attachments"])
    create_app(Settings(fixtures=out))  # what was recorded loads


def test_a_profile_the_mock_would_refuse_is_left_out_naming_the_field(tmp_path: Path) -> None:
    upstream = create_app(Settings())

    def without_version(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = Response.from_app(upstream, environ)
        if environ["PATH_INFO"] == f"{CANONICAL}/2":
            body = response.get_json()
            del body["access_profile"]["version"]
            response.set_data(json.dumps(body))
        return response(environ, start_response)

    out = tmp_path / "recorded.json"
    code, printed = recorded(without_version, out, users=("u-erin", "u-dave", "u-grace", "u-frank"))
    assert code == 1
    assert printed.split("\nLeft out (1):\n")[1].splitlines() == [
        "  - profile 2: version: this field is required; the mock would refuse to load it"
    ]
    assert [p["id"] for p in json.loads(out.read_text(encoding="utf-8"))["access_profiles"]] == [1, *range(3, 11)]


def test_a_recording_that_would_not_load_leaves_the_old_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "recorded.json"
    out.write_text("{}\n", encoding="utf-8")

    def refuse(path: Path) -> None:
        raise ValueError(f"{path.name}: refused for the test")

    settings = RecordSettings(base_url="http://upstream.invalid", out=out, authorization=f"Bearer {TOKEN}")
    code = record(settings, io.StringIO(), verify=refuse, http=WsgiHttp(create_app(Settings()), f"Bearer {TOKEN}"))
    assert code == 2
    assert out.read_text(encoding="utf-8") == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["recorded.json"]  # no temporary file left behind


def test_refused_credentials_record_nothing(tmp_path: Path) -> None:
    upstream = create_app(Settings(api_keys=bundled_api_keys()))
    out = tmp_path / "recorded.json"
    settings = RecordSettings(base_url="http://upstream.invalid", out=out, authorization="Bearer wrong")
    code = record(settings, io.StringIO(), http=WsgiHttp(upstream, "Bearer wrong"))
    assert code == 2
    assert not out.exists()


def test_a_yaml_recording_holds_the_same_document(tmp_path: Path) -> None:
    upstream = changed_upstream()
    recorded(upstream, tmp_path / "recorded.json")
    recorded(upstream, tmp_path / "recorded.yaml")
    as_yaml = yaml.safe_load((tmp_path / "recorded.yaml").read_text(encoding="utf-8"))
    assert as_yaml == json.loads((tmp_path / "recorded.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"out": "x.json"}, {}, "--base-url is required"),
        ({"base_url": "http://x"}, {}, "--out is required"),
        ({"base_url": "http://x", "out": "x.json", "token": "t", "basic": "a:b"}, {}, "not both"),
        ({"base_url": "http://x", "out": "x.json"}, {"MOCKSERVER_CONTRACT_BASIC": "admin"}, "user:password"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        settings_from(options, env)


def test_options_from_the_environment() -> None:
    settings = settings_from(
        {"out": "f.json", "users": ["u-a", " u-b ", "u-a"]},
        {"MOCKSERVER_CONTRACT_BASE_URL": "https://staging.example", "MOCKSERVER_CONTRACT_TOKEN": "t"},
    )
    assert (settings.base_url, settings.authorization, settings.users) == (
        "https://staging.example",
        "Bearer t",
        ("u-a", "u-b"),
    )


@pytest.mark.slow
def test_mockserver_record_then_mockserver_serve_from_the_file(tmp_path: Path) -> None:
    """The commands end to end: record a served mock with strict keys, then serve the file."""
    out = tmp_path / "staging.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}
    with BackgroundServer(create_app(Settings(api_keys=bundled_api_keys()))) as upstream:
        original = requests.get(
            f"{upstream.url}{CANONICAL}/7", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        result = run_mockserver(
            "record",
            "--base-url",
            upstream.url,
            "--out",
            str(out),
            "--user",
            "u-erin",
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
            timeout=120,
        )
        refused = run_mockserver(
            "record",
            "--base-url",
            upstream.url,
            "--out",
            str(tmp_path / "no.json"),
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": "not-a-key"},
            timeout=120,
        )
    assert result.returncode == 1, result.stdout + result.stderr  # the copies of users it could not name
    assert "profiles: page 1, 1-10 of 10" in result.stdout and "user u-erin: 1 copies" in result.stdout
    assert ADMIN_TOKEN not in result.stdout + result.stderr + out.read_text(encoding="utf-8")
    assert refused.returncode == 2 and "the first page of profiles answered HTTP 401" in refused.stderr
    assert not (tmp_path / "no.json").exists()
    with serve("--fixtures", str(out)) as served:
        replayed = requests.get(f"{served.url}{CANONICAL}/7", headers={"Authorization": "Bearer any"}, timeout=10)
    assert replayed.json()["access_profile"] == original.json()["access_profile"]
    assert replayed.json()["user_count"] == original.json()["user_count"] == 1
