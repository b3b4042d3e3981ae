"""A user's virtual keys and the caller's key-creation policy (contract section 1.1; docs/behaviour.md
decisions 21-25), over HTTP.

Fixtures (fixtures/default.json): u-erin holds copy 1 (of profile 7, the default of her role 5) with
key vk-1, and a standalone key vk-5 (erin-ci-runner); u-alice holds no copy and a standalone key vk-6
(alice-notebook); u-frank holds copy 4 (of profile 5) with key vk-4 and an extra key vk-7
(frank-reporting). fixtures/api-keys.json has a session key for u-erin.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ADMIN_TOKEN, Api, basic, error_of
from flask import Flask

USERS = "/api/governance/users"
LEGACY_USERS = "/api/users"
POLICY = f"{USERS}/me/vk-creation-policy"
ERIN_SESSION = "Bearer bf-session-u-erin-5e71c0"  # fixtures/api-keys.json


def keys_of(api: Api, user_id: str, users: str = USERS) -> list[dict[str, Any]]:
    response = api.get(f"{users}/{user_id}/virtual-keys")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["virtual_keys"]  # type: ignore[index,no-any-return]


def stored_value(api: Api, key_id: str) -> str:
    return next(k["value"] for k in api.mock.store.snapshot().virtual_keys if k["id"] == key_id)  # type: ignore[no-any-return]


def as_caller(api: Api, authorization: str) -> Api:
    return Api(api.app, authorization=authorization)


# -- listUserVirtualKeys (decision 23) -------------------------------------------------------------


@pytest.mark.parametrize("users", [USERS, LEGACY_USERS], ids=["canonical", "legacy"])
def test_the_list_holds_profile_keys_and_standalone_keys_masked_in_issue_order(api: Api, users: str) -> None:
    assert keys_of(api, "u-erin", users) == [
        {
            "id": "vk-1",
            "name": "u-erin-security-red-team",
            "value": "sk-bf-****" + stored_value(api, "vk-1")[-4:],
            "is_access_profile_managed": True,
        },
        {
            "id": "vk-5",
            "name": "erin-ci-runner",
            "value": "sk-bf-****" + stored_value(api, "vk-5")[-4:],
            "is_access_profile_managed": False,
        },
    ]
    assert [(k["id"], k["is_access_profile_managed"]) for k in keys_of(api, "u-frank", users)] == [
        ("vk-4", True),
        ("vk-7", True),  # an extra key: the user's profiles govern it too
    ]
    assert [k["name"] for k in keys_of(api, "u-alice", users)] == ["alice-notebook"]
    assert keys_of(api, "nobody", users) == []


def test_the_deprecated_family_has_the_list_only(api: Api) -> None:
    refused = api.post(f"{LEGACY_USERS}/u-erin/virtual-keys", {"name": "erin-laptop"})
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET")
    assert api.get(f"{LEGACY_USERS}/me/vk-creation-policy").status_code == 404
    assert [k["name"] for k in keys_of(api, "u-erin")] == ["u-erin-security-red-team", "erin-ci-runner"]


# -- addUserVirtualKey (one key store with the deprecated #20) --------------------------------------


def test_a_minted_key_is_shown_once_then_listed_masked(api: Api) -> None:
    response = api.post(f"{USERS}/u-erin/virtual-keys", {"name": "erin-laptop", "description": "Red-team laptop"})
    assert response.status_code == 200
    key = response.json["virtual_key"]
    assert (key["id"], key["name"]) == ("vk-8", "erin-laptop")
    assert key["value"] == stored_value(api, "vk-8") and key["value"].startswith("sk-bf-")
    assert keys_of(api, "u-erin")[-1] == {
        "id": "vk-8",
        "name": "erin-laptop",
        "value": "sk-bf-****" + key["value"][-4:],
        "is_access_profile_managed": True,
    }
    unnamed = api.post(f"{USERS}/u-erin/virtual-keys")
    assert unnamed.status_code == 200 and unnamed.json["virtual_key"]["name"] == "u-erin-key-9"


def test_keys_minted_by_either_operation_share_one_store_and_one_namespace(api: Api) -> None:
    old = api.post(f"{USERS}/u-frank/access-profiles/4/virtual-keys", {"name": "frank-old-way"})
    new = api.post(f"{USERS}/u-frank/virtual-keys", {"name": "frank-new-way"})
    assert (old.status_code, new.status_code) == (200, 200)
    listed = [k["name"] for k in keys_of(api, "u-frank")]
    assert listed == ["u-frank-finance-analysts", "frank-reporting", "frank-old-way", "frank-new-way"]
    for path in (f"{USERS}/u-erin/virtual-keys", f"{USERS}/u-erin/access-profiles/1/virtual-keys"):
        for taken in ("frank-old-way", "frank-new-way", "erin-ci-runner"):  # a standalone key's name too
            clash = api.post(path, {"name": taken})
            assert (clash.status_code, error_of(clash)["param"]) == (409, "name"), (path, taken)
    # A key minted by either is deleted by the one delete operation.
    vk_id = new.json["virtual_key"]["id"]
    assert api.delete(f"{USERS}/u-frank/access-profiles/virtual-keys/{vk_id}").status_code == 200
    assert "frank-new-way" not in [k["name"] for k in keys_of(api, "u-frank")]


@pytest.mark.parametrize("user", ["u-alice", "nobody"])
def test_a_user_without_a_copy_gets_404_and_nothing_changes(api: Api, user: str) -> None:
    before = api.mock.store.snapshot()
    refused = api.post(f"{USERS}/{user}/virtual-keys", {"name": "orphan"})
    assert refused.status_code == 404
    assert (error_of(refused)["message"], error_of(refused)["param"]) == ("User has no access profiles", "user_id")
    assert api.mock.store.snapshot() == before  # not even a key number was used


def test_a_bad_body_is_400_before_the_user_is_looked_up(api: Api) -> None:
    response = api.post(f"{USERS}/nobody/virtual-keys", {"name": 7})
    assert (response.status_code, error_of(response)["param"]) == (400, "name")


def test_minting_is_audited_for_the_user(api: Api) -> None:
    key = api.post(f"{USERS}/u-erin/virtual-keys", {"name": "erin-laptop"}).json["virtual_key"]
    (row,) = api.get("/api/governance/access-profiles/audit-logs?action=add_virtual_key").json["audit_logs"]
    assert (row["user_id"], row["access_profile_id"], row["actor"]) == ("u-erin", None, "token ...oken")
    assert key["id"] in row["metadata"]


# -- a minted key and detaching copies (decision 25) ------------------------------------------------


def test_a_minted_key_survives_a_detach_while_another_copy_remains_and_goes_with_the_last(api: Api) -> None:
    # u-dave holds copy 2 (of profile 8); attaching profile 9 to his role gives him copy 5 too.
    assert (
        api.post("/api/governance/access-profiles/9/roles", {"role_ids": [4], "apply_to_existing": True}).json[
            "users_applied"
        ]
        == 2
    )
    dave_copies = [c["id"] for c in api.get(f"{USERS}/u-dave/access-profiles").json["access_profiles"]]
    assert dave_copies == [2, 5]
    key = api.post(f"{USERS}/u-dave/virtual-keys", {"name": "dave-laptop"}).json["virtual_key"]
    first = api.delete(f"{USERS}/u-dave/access-profiles/2")
    assert first.json["deleted_vk_names"] == ["u-dave-contractors"]
    assert [k["name"] for k in keys_of(api, "u-dave")] == ["u-dave-executive-assistants", "dave-laptop"]
    last = api.delete(f"{USERS}/u-dave/access-profiles/5")
    assert last.json == {
        "message": "User access profile detached",
        "deleted_vk_names": ["u-dave-executive-assistants", "dave-laptop"],
        "deleted_vk_count": 2,
    }
    assert keys_of(api, "u-dave") == []
    assert key["id"] not in {k["id"] for k in api.mock.store.snapshot().virtual_keys}


def test_a_standalone_key_outlives_the_users_last_copy(api: Api) -> None:
    removed = api.delete(f"{USERS}/u-erin/access-profiles/1")
    assert removed.json["deleted_vk_names"] == ["u-erin-security-red-team"]
    assert [(k["name"], k["is_access_profile_managed"]) for k in keys_of(api, "u-erin")] == [("erin-ci-runner", False)]
    # Without a copy, no more keys can be minted for her; the standalone key can still be deleted.
    assert api.post(f"{USERS}/u-erin/virtual-keys").status_code == 404
    assert api.delete(f"{USERS}/u-erin/access-profiles/virtual-keys/vk-5").status_code == 200
    assert keys_of(api, "u-erin") == []


# -- getMyVirtualKeyCreationPolicy (decisions 22 and 24) --------------------------------------------


@pytest.fixture
def strict(make_app: Any) -> Flask:
    from mockserver.resources import bundled_api_keys

    return make_app(api_keys=bundled_api_keys())  # type: ignore[no-any-return]


def test_callers_without_a_per_user_identity_have_no_profile(api: Api, strict: Flask) -> None:
    assert api.get(POLICY).json == {"has_access_profile": False}  # permissive: every caller is an admin
    assert Api(strict, f"Bearer {ADMIN_TOKEN}").get(POLICY).json == {"has_access_profile": False}  # a management key


def test_a_users_session_names_the_profile_that_would_govern_her_keys(strict: Flask) -> None:
    erin = Api(strict, ERIN_SESSION)
    response = erin.get(POLICY)
    assert response.status_code == 200
    assert response.json == {"has_access_profile": True, "profile_name": "Security red team"}


def test_basic_credentials_are_refused_where_upstream_takes_a_bearer_token_only(api: Api, strict: Flask) -> None:
    for app in (api.app, strict):
        admin = Api(app, basic("admin", "bifrost-admin"))
        for method, path in (("GET", POLICY), ("POST", f"{USERS}/u-erin/virtual-keys")):
            refused = admin.request(method, path)
            assert refused.status_code == 401, (method, path)
            assert error_of(refused)["message"] == "this operation accepts only Bearer credentials, not Basic"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert admin.get(f"{USERS}/u-erin/virtual-keys").status_code == 200  # the list takes Basic too


def test_the_best_ranked_active_copy_governs(strict: Flask, clock: Any) -> None:
    admin, erin = Api(strict, f"Bearer {ADMIN_TOKEN}"), Api(strict, ERIN_SESSION)
    # A second copy for Erin, of profile 9, attached to her role 5 but not as its default.
    assert (
        admin.post("/api/governance/access-profiles/9/roles", {"role_ids": [5], "apply_to_existing": True}).json[
            "users_applied"
        ]
        == 1
    )
    assert erin.get(POLICY).json["profile_name"] == "Security red team"  # her role's default ranks first
    admin.post("/api/governance/access-profiles/9/roles", {"role_ids": [5], "is_default": True})
    assert erin.get(POLICY).json["profile_name"] == "Executive assistants"
    store = Api(strict).mock.store
    with store.write() as state:  # the default's copy is switched off: the other one governs
        state.user_copies = tuple(
            {**c, "is_active": False} if c["parent_profile_id"] == 9 else c for c in state.user_copies
        )
    assert erin.get(POLICY).json["profile_name"] == "Security red team"
    with store.write() as state:  # and once that one has expired too, nothing governs
        expired = clock().isoformat().replace("+00:00", "Z")
        state.user_copies = tuple(
            {**c, "expires_at": expired} if c["user_id"] == "u-erin" else c for c in state.user_copies
        )
    assert erin.get(POLICY).json == {"has_access_profile": False}


def test_a_session_of_a_user_without_copies_has_no_profile(make_app: Any, tmp_path: Any) -> None:
    import json

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"api_keys": [{"name": "alice", "key": "alice-s", "user_id": "u-alice", "scopes": []}]}))
    alice = Api(make_app(api_keys=keys), "Bearer alice-s")
    forbidden = alice.get(POLICY)
    assert (forbidden.status_code, error_of(forbidden)["type"]) == (403, "forbidden")  # View is needed
    keys.write_text(
        json.dumps(
            {"api_keys": [{"name": "alice", "key": "alice-s", "user_id": "u-alice", "scopes": ["AccessProfiles:View"]}]}
        )
    )
    alice = Api(make_app(api_keys=keys), "Bearer alice-s")
    assert alice.get(POLICY).json == {"has_access_profile": False}


# -- the inspector: its journal rows and its operation filter ---------------------------------------


def test_the_inspector_sees_each_call_under_its_operation(api: Api) -> None:
    api.get(f"{USERS}/u-erin/virtual-keys")
    api.get(f"{LEGACY_USERS}/u-erin/virtual-keys")
    api.post(f"{USERS}/u-alice/virtual-keys", {"name": "alice-laptop"})
    api.get(POLICY)
    api.request("GET", POLICY, headers={"Authorization": basic("admin", "x")})
    entries = api.client.get("/__mock/journal").json["entries"]
    assert [(e["operation_id"], e["canonical_id"], e["status"], e["refused_by"]) for e in entries] == [
        ("listUserVirtualKeys", "listUserVirtualKeys", 200, None),
        ("listUserVirtualKeysLegacy", "listUserVirtualKeys", 200, None),
        ("addUserVirtualKey", "addUserVirtualKey", 404, "rule"),
        ("getMyVirtualKeyCreationPolicy", "getMyVirtualKeyCreationPolicy", 200, None),
        ("getMyVirtualKeyCreationPolicy", "getMyVirtualKeyCreationPolicy", 401, "auth"),
    ]
    # The page's operation filter lists the operationIds of the spec it is served with.
    ids = {
        op["operationId"]
        for item in api.client.get("/openapi.json").json["paths"].values()
        for op in item.values()
        if "operationId" in op
    }
    assert {
        "listUserVirtualKeys",
        "listUserVirtualKeysLegacy",
        "addUserVirtualKey",
        "getMyVirtualKeyCreationPolicy",
    } <= ids
    filtered = api.client.get("/__mock/journal?operation_id=listUserVirtualKeys").json["entries"]
    assert [e["path"] for e in filtered] == [f"{USERS}/u-erin/virtual-keys", f"{LEGACY_USERS}/u-erin/virtual-keys"]
