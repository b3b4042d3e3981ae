"""Authentication and permissions (contract.md section 4 and decisions 2 and 20)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN_TOKEN, CANONICAL, LEGACY, PREFIXES, PROVISIONER_TOKEN, VIEWER_TOKEN, Api, basic, error_of
from flask import Flask
from werkzeug.test import TestResponse

from mockserver.domain.fixtures import load_seed
from mockserver.domain.store import State
from mockserver.resources import bundled_api_keys, bundled_fixtures, bundled_spec
from mockserver.spec.document import Spec

ADMIN_LOGIN = basic("admin", "bifrost-admin")  # fixtures/api-keys.json; any Basic login works when permissive
LEGACY_ADMIN_BEARER = "Bearer " + base64.b64encode(b"admin:bifrost-admin").decode()
VIRTUAL_KEY = "Bearer sk-bf-4f9c2e7a1b3d5f60"
VIEW, CREATE, UPDATE, DELETE = (f"AccessProfiles:{p}" for p in ("View", "Create", "Update", "Delete"))
ALL_PERMISSIONS = (VIEW, CREATE, UPDATE, DELETE)
ITEM = "/{profile_id}"

# contract.md section 1: operationId -> (method, path, permission), with the deprecated aliases.
OPERATIONS: dict[str, tuple[str, str, str]] = {}
for _prefix, _suffix in ((CANONICAL, ""), (LEGACY, "Legacy")):
    OPERATIONS |= {
        f"listAccessProfiles{_suffix}": ("GET", _prefix, VIEW),
        f"createAccessProfile{_suffix}": ("POST", _prefix, CREATE),
        f"getAccessProfile{_suffix}": ("GET", _prefix + ITEM, VIEW),
        f"updateAccessProfile{_suffix}": ("PUT", _prefix + ITEM, UPDATE),
        f"deleteAccessProfile{_suffix}": ("DELETE", _prefix + ITEM, DELETE),
        f"activateAccessProfile{_suffix}": ("PUT", _prefix + ITEM + "/activate", UPDATE),
        f"deactivateAccessProfile{_suffix}": ("PUT", _prefix + ITEM + "/deactivate", UPDATE),
        f"cloneAccessProfile{_suffix}": ("POST", _prefix + ITEM + "/clone", CREATE),
    }
# Rows 9-21: (canonical id, legacy id, method, path after /api/governance, permission).
_ROWS_9_TO_21 = [
    (
        "propagateAccessProfile",
        "propagateAccessProfileLegacy",
        "POST",
        "/access-profiles/{profile_id}/propagate",
        CREATE,
    ),
    (
        "attachRolesToAccessProfile",
        "attachAccessProfileRolesLegacy",
        "POST",
        "/access-profiles/{profile_id}/roles",
        CREATE,
    ),
    (
        "detachRoleFromAccessProfile",
        "detachAccessProfileRoleLegacy",
        "DELETE",
        "/access-profiles/{profile_id}/roles/{role_id}",
        DELETE,
    ),
    (
        "listAccessProfileVersions",
        "listAccessProfileVersionsLegacy",
        "GET",
        "/access-profiles/{profile_id}/versions",
        VIEW,
    ),
    (
        "getAccessProfileVersion",
        "getAccessProfileVersionLegacy",
        "GET",
        "/access-profiles/{profile_id}/versions/{version}",
        VIEW,
    ),
    (
        "listAccessProfileAuditLogsById",
        "getAccessProfileAuditLogsLegacy",
        "GET",
        "/access-profiles/{profile_id}/audit-logs",
        VIEW,
    ),
    ("listAccessProfileAuditLogs", "getAllAccessProfileAuditLogsLegacy", "GET", "/access-profiles/audit-logs", VIEW),
    ("listUserAccessProfiles", "getUserAccessProfilesLegacy", "GET", "/users/{user_id}/access-profiles", VIEW),
    (
        "detachUserAccessProfile",
        "detachUserAccessProfileLegacy",
        "DELETE",
        "/users/{user_id}/access-profiles/{profile_id}",
        DELETE,
    ),
    (
        "updateUserAccessProfileBudgetOverride",
        "updateUserAccessProfileBudgetOverrideLegacy",
        "PUT",
        "/users/{user_id}/access-profiles/{profile_id}/budgets/{budget_id}/override",
        UPDATE,
    ),
    (
        "deleteUserAccessProfileBudgetOverride",
        "deleteUserAccessProfileBudgetOverrideLegacy",
        "DELETE",
        "/users/{user_id}/access-profiles/{profile_id}/budgets/{budget_id}/override",
        DELETE,
    ),
    (
        "addUserAccessProfileVirtualKey",
        "addUserAccessProfileVirtualKeyLegacy",
        "POST",
        "/users/{user_id}/access-profiles/{profile_id}/virtual-keys",
        CREATE,
    ),
    (
        "deleteUserAccessProfileVirtualKey",
        "deleteUserAccessProfileVirtualKeyLegacy",
        "DELETE",
        "/users/{user_id}/access-profiles/virtual-keys/{vk_id}",
        DELETE,
    ),
]
for _canonical, _legacy, _method, _tail, _permission in _ROWS_9_TO_21:
    OPERATIONS[_canonical] = (_method, "/api/governance" + _tail, _permission)
    OPERATIONS[_legacy] = (_method, "/api" + _tail, _permission)
LEGACY_OF = {legacy: canonical for canonical, legacy, *_ in _ROWS_9_TO_21}
# Section 1.1 (#22-#24), the user's keys: upstream mounts a deprecated twin for the list only.
OPERATIONS |= {
    "listUserVirtualKeys": ("GET", "/api/governance/users/{user_id}/virtual-keys", VIEW),
    "listUserVirtualKeysLegacy": ("GET", "/api/users/{user_id}/virtual-keys", VIEW),
    "addUserVirtualKey": ("POST", "/api/governance/users/{user_id}/virtual-keys", CREATE),
    "getMyVirtualKeyCreationPolicy": ("GET", "/api/governance/users/me/vk-creation-policy", VIEW),
}

# Profile 2 (version 5) is attached to role 2 and nobody holds a copy of it; u-frank holds copy 4
# (of profile 5), which produced key vk-4.
_FRANK = next(
    c for c in load_seed(bundled_fixtures(), Spec.load(bundled_spec())).user_copies if c["user_id"] == "u-frank"
)
PARAMETERS = {
    "role_id": 2,
    "version": 5,
    "user_id": "u-frank",
    "budget_id": _FRANK["governance"]["budgets"][0]["id"],
    "vk_id": "vk-4",
}
COPY_ID = _FRANK["id"]
# What each operation is called with in these tests, and the status it answers when the caller may call it.
CALLS: dict[str, tuple[Any, int]] = {
    "listAccessProfiles": (None, 200),
    "createAccessProfile": ({"name": "Made with a key"}, 201),
    "getAccessProfile": (None, 200),
    "updateAccessProfile": ({"description": "Changed with a key"}, 200),
    "deleteAccessProfile": (None, 200),
    "activateAccessProfile": (None, 200),
    "deactivateAccessProfile": (None, 200),
    "cloneAccessProfile": ({"name": "Cloned with a key"}, 201),
    "propagateAccessProfile": ({"fields": ["budgets"], "dry_run": True}, 200),
    "attachRolesToAccessProfile": ({"role_ids": [7]}, 200),
    "detachRoleFromAccessProfile": (None, 200),
    "listAccessProfileVersions": (None, 200),
    "getAccessProfileVersion": (None, 200),
    "listAccessProfileAuditLogsById": (None, 200),
    "listAccessProfileAuditLogs": (None, 200),
    "listUserAccessProfiles": (None, 200),
    "detachUserAccessProfile": (None, 200),
    "updateUserAccessProfileBudgetOverride": ({"amount": 10, "mode": "forever"}, 200),
    "deleteUserAccessProfileBudgetOverride": (None, 200),
    "addUserAccessProfileVirtualKey": ({"name": "frank-extra"}, 200),
    "deleteUserAccessProfileVirtualKey": (None, 200),
    "listUserVirtualKeys": (None, 200),
    "addUserVirtualKey": ({"name": "frank-laptop"}, 200),
    "getMyVirtualKeyCreationPolicy": (None, 200),
}
ALL_OPERATIONS = pytest.mark.parametrize("operation_id", list(OPERATIONS))
WRITES = ["create", "update", "delete", "activate", "deactivate", "clone"]


def call_of(operation_id: str, profile_id: int | str = 2) -> tuple[str, str, Any, int]:
    """(method, path, body, success status) of a call to an operation."""
    method, template, _ = OPERATIONS[operation_id]
    canonical = LEGACY_OF.get(operation_id, operation_id.removesuffix("Legacy"))
    body, status = CALLS[canonical]
    if "/users/" in template and profile_id == 2:
        profile_id = COPY_ID  # on user paths, profile_id is the id of the user's copy
    return method, template.format(profile_id=profile_id, **PARAMETERS), body, status


def op_call(prefix: str, name: str, profile_id: int | str = 2) -> tuple[str, str, Any, int]:
    """``call_of`` by short name (``list``, ``create``...) on one path family."""
    stem = "listAccessProfiles" if name == "list" else f"{name}AccessProfile"
    return call_of(stem + ("Legacy" if prefix == LEGACY else ""), profile_id)


def assert_error(response: TestResponse, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    error = error_of(response)
    assert error["type"] == kind
    assert error["message"]
    return error


def assert_unauthorized(response: TestResponse) -> dict[str, Any]:
    error = assert_error(response, 401, "unauthorized")
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    return error


def assert_forbidden(response: TestResponse, permission: str) -> None:
    error = assert_error(response, 403, "forbidden")
    assert permission in error["message"]
    assert "WWW-Authenticate" not in response.headers


def state_of(api: Api) -> tuple[Any, State]:
    """Every profile as an admin lists it, and the whole store (history, audit log, counters)."""
    listing = api.get(f"{CANONICAL}?limit=100", headers={"Authorization": ADMIN_LOGIN})
    assert listing.status_code == 200
    return listing.json, api.mock.store.snapshot()


def assert_unchanged(api: Api, before: tuple[Any, State]) -> None:
    after = state_of(api)
    assert after[0] == before[0]
    assert after[1] == before[1]


def as_caller(api: Api, authorization: str | None) -> Api:
    """A client of the same app that sends these credentials (None: no Authorization header)."""
    return Api(api.app, authorization=authorization)


def key_file(tmp_path: Path, scopes: list[str]) -> Path:
    """An API-keys file with the admin login and one key, ``scoped-key``, holding ``scopes``."""
    path = tmp_path / "api-keys.json"
    document = {
        "admins": [{"username": "admin", "password": "bifrost-admin"}],
        "api_keys": [{"name": "scoped", "key": "scoped-key", "scopes": scopes}],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture(params=["permissive", "strict"])
def any_api(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Api:
    """The default mock, and one with the example API-keys file loaded; calls as the admin login."""
    keys = bundled_api_keys() if request.param == "strict" else None
    return Api(make_app(api_keys=keys), authorization=ADMIN_LOGIN)


# -- in every mode ---------------------------------------------------------------------------------


@ALL_OPERATIONS
def test_no_credentials_is_401(any_api: Api, operation_id: str) -> None:
    method, path, body, _ = call_of(operation_id)
    before = state_of(any_api)
    assert_unauthorized(as_caller(any_api, None).request(method, path, body))
    assert_unchanged(any_api, before)


@PREFIXES
@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "   ",
        "Token abc123",
        "Digest username=admin",
        "ApiKey abc123",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic",
        "Basic !!not-base64!!",
        "Basic " + base64.b64encode(b"admin-without-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
    ],
    ids=[
        "empty",
        "blank",
        "token-scheme",
        "digest-scheme",
        "apikey-scheme",
        "bearer-without-token",
        "bearer-space",
        "bearer-spaces",
        "basic-without-credentials",
        "basic-not-base64",
        "basic-without-colon",
        "basic-not-utf8",
    ],
)
def test_malformed_authorization_is_401(any_api: Api, prefix: str, authorization: str) -> None:
    method, path, body, _ = op_call(prefix, "delete")
    before = state_of(any_api)
    assert_unauthorized(as_caller(any_api, authorization).request(method, path, body))
    assert_unchanged(any_api, before)


@PREFIXES
@pytest.mark.parametrize("name", ["list", "create", "delete"])
def test_virtual_key_is_401(any_api: Api, prefix: str, name: str) -> None:
    """Virtual keys (``sk-bf-...``) are for inference, never for management APIs."""
    method, path, body, _ = op_call(prefix, name)
    before = state_of(any_api)
    assert_unauthorized(as_caller(any_api, VIRTUAL_KEY).request(method, path, body))
    assert_unchanged(any_api, before)


@PREFIXES
@pytest.mark.parametrize("authorization", [ADMIN_LOGIN, LEGACY_ADMIN_BEARER], ids=["basic", "legacy-bearer"])
def test_admin_login_may_call_every_operation(any_api: Api, prefix: str, authorization: str) -> None:
    admin = as_caller(any_api, authorization)
    for name in ("update", "activate", "deactivate", "clone", "create", "delete"):
        method, path, body, status = op_call(prefix, name)
        response = admin.request(method, path, body)
        assert response.status_code == status, (name, response.get_data(as_text=True))
    assert admin.get(f"{prefix}/2").status_code == 404


# -- permissive mode (no API-keys file) --------------------------------------------------------------


@PREFIXES
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer dev-token",
        "Bearer " + ADMIN_TOKEN,
        "bearer lower-case-scheme",
        "BEARER upper-case-scheme",
        "Bearer " + base64.b64encode(b"someone:whatever").decode(),
        basic("anyone", "anything"),
        basic("admin", "not-the-password"),
    ],
    ids=["any-token", "a-key", "lower-case", "upper-case", "legacy-form", "basic", "basic-wrong-password"],
)
def test_permissive_mode_accepts_any_credential_as_admin(api: Api, prefix: str, authorization: str) -> None:
    caller = as_caller(api, authorization)
    method, path, body, status = op_call(prefix, "delete")
    assert caller.request(method, path, body).status_code == status
    assert_error(caller.get(f"{prefix}/2"), 404, "not_found")


# -- strict mode (fixtures/api-keys.json) -------------------------------------------------------------


@PREFIXES
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-key",
        "Bearer " + VIEWER_TOKEN.upper(),
        "Bearer " + VIEWER_TOKEN + "x",
        basic("admin", "wrong"),
        basic("admin", ""),
        basic("nobody", "bifrost-admin"),
        basic("Admin", "bifrost-admin"),
        basic(ADMIN_TOKEN, ""),
        "Basic " + ADMIN_TOKEN,
        "Bearer " + base64.b64encode(b"admin:wrong").decode(),
    ],
    ids=[
        "unknown-bearer",
        "key-in-other-case",
        "key-with-suffix",
        "wrong-password",
        "empty-password",
        "unknown-user",
        "user-in-other-case",
        "key-as-basic-user",
        "key-as-basic-credential",
        "legacy-bearer-wrong-password",
    ],
)
def test_strict_mode_refuses_unknown_credentials(strict_api: Api, prefix: str, authorization: str) -> None:
    method, path, body, _ = op_call(prefix, "delete")
    before = state_of(strict_api)
    assert_unauthorized(as_caller(strict_api, authorization).request(method, path, body))
    assert_unauthorized(as_caller(strict_api, authorization).get(prefix))
    assert_unchanged(strict_api, before)


@PREFIXES
def test_viewer_can_list_and_get(strict_api: Api, prefix: str) -> None:
    viewer = as_caller(strict_api, f"Bearer {VIEWER_TOKEN}")
    listing = viewer.get(f"{prefix}?limit=100")
    assert listing.status_code == 200
    assert listing.json == state_of(strict_api)[0]
    detail = viewer.get(f"{prefix}/1")
    assert detail.status_code == 200
    assert detail.json["access_profile"] == strict_api.profile(1)  # type: ignore[index]


@PREFIXES
@pytest.mark.parametrize(
    ("name", "permission"),
    [
        ("create", CREATE),
        ("update", UPDATE),
        ("delete", DELETE),
        ("activate", UPDATE),
        ("deactivate", UPDATE),
        ("clone", CREATE),
    ],
    ids=WRITES,
)
def test_viewer_cannot_write(strict_api: Api, prefix: str, name: str, permission: str) -> None:
    method, path, body, _ = op_call(prefix, name)
    before = state_of(strict_api)
    assert_forbidden(as_caller(strict_api, f"Bearer {VIEWER_TOKEN}").request(method, path, body), permission)
    assert_unchanged(strict_api, before)


@PREFIXES
@pytest.mark.parametrize("name", ["create", "update", "activate", "deactivate", "clone"])
def test_provisioner_can_create_and_update(strict_api: Api, prefix: str, name: str) -> None:
    method, path, body, status = op_call(prefix, name)
    response = as_caller(strict_api, f"Bearer {PROVISIONER_TOKEN}").request(method, path, body)
    assert response.status_code == status, response.get_data(as_text=True)


@PREFIXES
def test_provisioner_cannot_delete(strict_api: Api, prefix: str) -> None:
    before = state_of(strict_api)
    assert_forbidden(as_caller(strict_api, f"Bearer {PROVISIONER_TOKEN}").delete(f"{prefix}/2"), DELETE)
    assert_unchanged(strict_api, before)


@PREFIXES
def test_ci_admin_key_may_delete(strict_api: Api, prefix: str) -> None:
    assert strict_api.delete(f"{prefix}/2").status_code == 200
    assert_error(strict_api.get(f"{prefix}/2"), 404, "not_found")


def test_admin_login_bypasses_rbac(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """An admin login holds no scopes in the keys file, yet may call what no key of that file may."""
    api = Api(make_app(api_keys=key_file(tmp_path, [])), authorization=ADMIN_LOGIN)
    assert_forbidden(as_caller(api, "Bearer scoped-key").delete(f"{CANONICAL}/2"), DELETE)
    assert api.delete(f"{CANONICAL}/2").status_code == 200
    assert as_caller(api, LEGACY_ADMIN_BEARER).delete(f"{CANONICAL}/3").status_code == 200


# -- the permission table -------------------------------------------------------------------------


def test_spec_operations_and_permissions_match_the_contract(api: Api) -> None:
    found = {op_id: (op.method, op.path, op.permission) for op_id, op in api.mock.spec.operations.items()}
    assert found == OPERATIONS
    declared = {
        op["operationId"]: op["x-bifrost-permission"]
        for item in api.mock.spec.document["paths"].values()
        for method, op in item.items()
        if method != "parameters"
    }
    assert declared == {op_id: permission for op_id, (_, _, permission) in OPERATIONS.items()}


@ALL_OPERATIONS
def test_key_lacking_the_operation_permission_is_403(
    make_app: Callable[..., Flask], tmp_path: Path, operation_id: str
) -> None:
    permission = OPERATIONS[operation_id][2]
    others = [p for p in ALL_PERMISSIONS if p != permission]
    api = Api(make_app(api_keys=key_file(tmp_path, others)), authorization="Bearer scoped-key")
    method, path, body, _ = call_of(operation_id)
    before = state_of(api)
    assert_forbidden(api.request(method, path, body), permission)
    assert_unchanged(api, before)


@ALL_OPERATIONS
def test_key_holding_only_the_operation_permission_may_call_it(
    make_app: Callable[..., Flask], tmp_path: Path, operation_id: str
) -> None:
    permission = OPERATIONS[operation_id][2]
    api = Api(make_app(api_keys=key_file(tmp_path, [permission])), authorization="Bearer scoped-key")
    method, path, body, status = call_of(operation_id)
    response = api.request(method, path, body)
    assert response.status_code == status, response.get_data(as_text=True)


def test_key_without_any_scope_may_call_nothing(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    api = Api(make_app(api_keys=key_file(tmp_path, [])), authorization="Bearer scoped-key")
    before = state_of(api)
    for operation_id, (_, _, permission) in OPERATIONS.items():
        method, path, body, _ = call_of(operation_id)
        assert_forbidden(api.request(method, path, body), permission)
    assert_unchanged(api, before)


# -- order of checks (decision 2): auth, then request schema, then existence ---------------------------

BAD_BODIES = pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"name": ', "application/json"),
        (b'{"name": 5, "description": 7}', "application/json"),
        (b"[]", "application/json"),
        (b"name=x", "text/plain"),
        (b"", "application/json"),
    ],
    ids=["malformed", "wrong-types", "not-an-object", "wrong-content-type", "empty"],
)
BODY_WRITES = pytest.mark.parametrize("name", ["create", "update", "clone"])


@PREFIXES
@BODY_WRITES
@BAD_BODIES
def test_missing_credentials_are_reported_before_a_bad_body(
    any_api: Api, prefix: str, name: str, data: bytes, content_type: str
) -> None:
    method, path, _, _ = op_call(prefix, name)
    before = state_of(any_api)
    response = as_caller(any_api, None).request(method, path, data=data, headers={"Content-Type": content_type})
    assert_unauthorized(response)
    assert_unchanged(any_api, before)


@PREFIXES
@BODY_WRITES
def test_missing_credentials_are_reported_before_an_oversized_body(any_api: Api, prefix: str, name: str) -> None:
    method, path, _, _ = op_call(prefix, name)
    data = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = as_caller(any_api, None).request(method, path, data=data, headers={"Content-Type": "application/json"})
    assert_unauthorized(response)


@PREFIXES
@pytest.mark.parametrize(("name", "permission"), [("create", CREATE), ("update", UPDATE), ("clone", CREATE)])
@BAD_BODIES
def test_missing_permission_is_reported_before_a_bad_body(
    strict_api: Api, prefix: str, name: str, permission: str, data: bytes, content_type: str
) -> None:
    method, path, _, _ = op_call(prefix, name)
    before = state_of(strict_api)
    viewer = as_caller(strict_api, f"Bearer {VIEWER_TOKEN}")
    assert_forbidden(viewer.request(method, path, data=data, headers={"Content-Type": content_type}), permission)
    assert_unchanged(strict_api, before)


@PREFIXES
@pytest.mark.parametrize("profile_id", ["999", "0", "abc"], ids=["unknown", "zero", "not-an-integer"])
@pytest.mark.parametrize("name", WRITES[1:])
def test_credentials_are_checked_before_the_profile_id(
    strict_api: Api, prefix: str, name: str, profile_id: str
) -> None:
    method, path, body, _ = op_call(prefix, name, profile_id)
    before = state_of(strict_api)
    assert_unauthorized(as_caller(strict_api, None).request(method, path, body))
    assert_unauthorized(as_caller(strict_api, "Bearer not-a-key").request(method, path, body))
    assert_error(as_caller(strict_api, f"Bearer {VIEWER_TOKEN}").request(method, path, body), 403, "forbidden")
    assert_unchanged(strict_api, before)


@PREFIXES
def test_unknown_id_is_404_once_the_caller_may_read(strict_api: Api, prefix: str) -> None:
    viewer = as_caller(strict_api, f"Bearer {VIEWER_TOKEN}")
    assert_error(viewer.get(f"{prefix}/999"), 404, "not_found")


@PREFIXES
@pytest.mark.parametrize("name", ["update", "clone"])
def test_bad_body_is_reported_before_an_unknown_id(strict_api: Api, prefix: str, name: str) -> None:
    method, path, _, _ = op_call(prefix, name, 999)
    before = state_of(strict_api)
    response = strict_api.request(method, path, {"name": 5})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_of(response)["param"] == "name"
    assert_unchanged(strict_api, before)
