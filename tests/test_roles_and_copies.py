"""Roles, users' copies, propagation, history, audit and overrides (decisions 12 and 14-18), over HTTP.

Fixtures (fixtures/default.json): roles 1-7; u-erin holds copy 1 (of profile 7), u-dave copy 2 and
u-grace copy 3 (of profile 8), u-frank copy 4 (of profile 5), each with one key (vk-1..vk-4).
Profile 9 has no role and no copy; role 7 (executive-office) has one member, u-heidi.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import CANONICAL, LEGACY, Api, error_of

FAMILIES = pytest.mark.parametrize(
    ("profiles", "users"),
    [(CANONICAL, "/api/governance/users"), (LEGACY, "/api/users")],
    ids=["canonical", "legacy"],
)


def copies_of(api: Api, user_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/governance/users/{user_id}/access-profiles")
    assert response.status_code == 200
    return response.json["access_profiles"]  # type: ignore[index,no-any-return]


def stored_copy(api: Api, copy_id: int) -> dict[str, Any]:
    return next(c for c in api.mock.store.snapshot().user_copies if c["id"] == copy_id)


def audit_rows(api: Api, query: str = "") -> dict[str, Any]:
    return api.get(f"{CANONICAL}/audit-logs{query}").json  # type: ignore[return-value]


# -- roles (decision 14) -------------------------------------------------------------------------------


@FAMILIES
def test_attaching_a_role_shows_in_the_profile_and_gives_members_a_copy(api: Api, profiles: str, users: str) -> None:
    response = api.post(f"{profiles}/9/roles", {"role_ids": [7], "is_default": True, "apply_to_existing": True})
    assert response.status_code == 200
    assert response.json == {"message": "Roles attached", "users_applied": 1}
    detail = api.get(f"{profiles}/9").json
    assert [(r["role_id"], r["role_name"], r["is_default"]) for r in detail["roles"]] == [(7, "executive-office", True)]
    assert detail["user_count"] == 1
    (copy,) = copies_of(api, "u-heidi")
    assert (copy["parent_profile_id"], copy["name"], copy["is_active"]) == (9, "Executive assistants", True)
    # Attaching again is idempotent: no second copy.
    again = api.post(f"{profiles}/9/roles", {"role_ids": [7], "is_default": True, "apply_to_existing": True})
    assert again.json["users_applied"] == 0
    assert len(copies_of(api, "u-heidi")) == 1


def test_reattaching_updates_is_default_and_a_role_has_one_default(api: Api) -> None:
    api.post(f"{CANONICAL}/9/roles", {"role_ids": [1], "is_default": True})
    roles_of = {p: api.get(f"{CANONICAL}/{p}").json["roles"] for p in (1, 4, 9)}
    assert [r["is_default"] for r in roles_of[9]] == [True]
    assert [r["is_default"] for r in roles_of[1]] == [False]  # profile 1 was role 1's default
    assert [r["is_default"] for r in roles_of[4]] == [False]
    api.post(f"{CANONICAL}/9/roles", {"role_ids": [1]})
    assert [r["is_default"] for r in api.get(f"{CANONICAL}/9").json["roles"]] == [False]


def test_attaching_an_unknown_role_is_400_naming_role_ids_and_changes_nothing(api: Api) -> None:
    before = api.mock.store.snapshot()
    response = api.post(f"{CANONICAL}/9/roles", {"role_ids": [7, 99]})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["message"]) == ("role_ids", "role_ids[1]: no role with id 99")
    assert api.mock.store.snapshot() == before


def test_attaching_to_an_unknown_profile_is_404(api: Api) -> None:
    response = api.post(f"{CANONICAL}/999/roles", {"role_ids": [1]})
    assert (response.status_code, error_of(response)["message"]) == (404, "Profile not found")


@FAMILIES
def test_detaching_a_role_keeps_the_copies(api: Api, profiles: str, users: str) -> None:
    assert api.delete(f"{profiles}/8/roles/4").json == {"message": "Role detached"}
    assert api.get(f"{profiles}/8").json["roles"] == []
    assert [c["parent_profile_id"] for c in copies_of(api, "u-dave")] == [8]
    missing = api.delete(f"{profiles}/8/roles/4")
    assert (missing.status_code, error_of(missing)["message"]) == (404, "Role attachment not found")


# -- users' copies (decision 15) -----------------------------------------------------------------------


@FAMILIES
def test_a_users_copies_are_listed_with_masked_keys(api: Api, profiles: str, users: str) -> None:
    (copy,) = api.get(f"{users}/u-erin/access-profiles").json["access_profiles"]
    assert copy == {
        "id": 1,
        "user_id": "u-erin",
        "parent_profile_id": 7,
        "name": "Security red team",
        "is_active": True,
        "expires_at": None,
        "virtual_key_ids": ["vk-1"],
        "virtual_key_values": {"vk-1": copy["virtual_key_values"]["vk-1"]},
    }
    value = copy["virtual_key_values"]["vk-1"]
    full = next(k for k in api.mock.store.snapshot().virtual_keys if k["id"] == "vk-1")["value"]
    assert value == "sk-bf-****" + full[-4:] and full.startswith("sk-bf-") and len(full) > 20
    assert api.get(f"{users}/nobody/access-profiles").json == {"access_profiles": []}


@FAMILIES
def test_removing_a_copy_deletes_its_keys(api: Api, profiles: str, users: str) -> None:
    response = api.delete(f"{users}/u-dave/access-profiles/2")
    assert response.json == {
        "message": "User access profile detached",
        "deleted_vk_names": ["u-dave-contractors"],
        "deleted_vk_count": 1,
    }
    assert copies_of(api, "u-dave") == []
    assert "vk-2" not in {k["id"] for k in api.mock.store.snapshot().virtual_keys}
    assert api.get(f"{profiles}/8").json["user_count"] == 1


@pytest.mark.parametrize(("user", "copy_id"), [("u-dave", 3), ("u-dave", 99), ("nobody", 2)])
def test_removing_a_copy_that_is_not_the_users_is_404(api: Api, user: str, copy_id: int) -> None:
    response = api.delete(f"/api/governance/users/{user}/access-profiles/{copy_id}")
    assert (response.status_code, error_of(response)["message"]) == (404, "User access profile not found")


def test_a_profile_with_copies_cannot_be_deleted_until_they_are_removed(api: Api) -> None:
    refused = api.delete(f"{CANONICAL}/8")
    assert refused.status_code == 409
    assert error_of(refused)["message"] == "Profile has active user copies; detach users first."
    api.delete("/api/governance/users/u-dave/access-profiles/2")
    api.delete("/api/governance/users/u-grace/access-profiles/3")
    assert api.delete(f"{CANONICAL}/8").status_code == 200
    assert api.get(f"{CANONICAL}/8").status_code == 404


# -- propagation (decision 16) -------------------------------------------------------------------------


def test_a_dry_run_reports_and_changes_nothing(api: Api) -> None:
    api.put(f"{CANONICAL}/8", {"budgets": [{"max_limit": 999, "reset_duration": "1M"}]})
    before = api.mock.store.snapshot()
    response = api.post(f"{CANONICAL}/8/propagate", {"fields": ["budgets"], "dry_run": True})
    assert response.json == {
        "affected_users": 2,
        "failed_users": 0,
        "skipped_users": 0,
        "user_ids": ["u-dave", "u-grace"],
        "fields": ["budgets"],
        "applied": False,
        "vk_sync_errors": [],
    }
    assert api.mock.store.snapshot() == before


@FAMILIES
def test_propagation_copies_the_chosen_fields_and_keeps_usage(api: Api, profiles: str, users: str) -> None:
    template_budget = api.get(f"{profiles}/8").json["access_profile"]["budgets"][0]
    copy = stored_copy(api, 2)
    kept = copy["governance"]["budgets"][0]
    with api.mock.store.write() as state:  # the copy has been used
        used = {**copy, "governance": {**copy["governance"], "budgets": [{**kept, "current_usage": 40}]}}
        state.user_copies = tuple(used if c["id"] == 2 else c for c in state.user_copies)
    api.put(
        f"{profiles}/8",
        {
            "budgets": [{"id": template_budget["id"], "max_limit": 300, "reset_duration": "1w"}],
            "mcp_servers": [{"mcp_server_id": "linear"}],
            "tags": ["not propagated"],
        },
    )
    version = api.get(f"{profiles}/8").json["access_profile"]["version"]
    response = api.post(f"{profiles}/8/propagate", {"fields": ["budgets", "mcp_servers"], "user_ids": ["u-dave"]})
    assert response.json["applied"] is True and response.json["affected_users"] == 1
    governance = stored_copy(api, 2)["governance"]
    (budget,) = governance["budgets"]
    assert (budget["id"], budget["max_limit"], budget["current_usage"]) == (kept["id"], 300, 40)
    assert governance["mcp_servers"] == [{"mcp_server_id": "linear"}]
    assert stored_copy(api, 3)["governance"]["mcp_servers"] == []  # u-grace was not targeted
    assert api.get(f"{profiles}/8").json["access_profile"]["version"] == version  # no bump


def test_reset_usage_zeroes_the_copied_counters_but_keeps_overrides(api: Api) -> None:
    budget_id = stored_copy(api, 2)["governance"]["budgets"][0]["id"]
    api.put(
        f"/api/governance/users/u-dave/access-profiles/2/budgets/{budget_id}/override", {"amount": 5, "mode": "forever"}
    )
    with api.mock.store.write() as state:
        state.user_copies = tuple(
            {**c, "governance": {**c["governance"], "budgets": [{**c["governance"]["budgets"][0], "current_usage": 9}]}}
            if c["id"] == 2
            else c
            for c in state.user_copies
        )
    api.post(f"{CANONICAL}/8/propagate", {"fields": ["budgets"], "reset_usage": True})
    (budget,) = stored_copy(api, 2)["governance"]["budgets"]
    assert (budget["current_usage"], budget["override_amount"], budget["override_mode"]) == (0, 5, "forever")


def test_user_ids_without_a_copy_are_skipped_and_group_ids_select_users(api: Api) -> None:
    response = api.post(f"{CANONICAL}/8/propagate", {"fields": ["rate_limit"], "user_ids": ["u-dave", "u-alice", "x"]})
    assert (response.json["affected_users"], response.json["skipped_users"]) == (1, 2)
    grouped = api.post(f"{CANONICAL}/7/propagate", {"fields": ["budgets"], "group_ids": ["team-security"]})
    assert grouped.json["user_ids"] == ["u-erin"]


def test_propagating_a_profile_without_copies_answers_zeros(api: Api) -> None:
    response = api.post(f"{CANONICAL}/9/propagate", {"fields": ["budgets"]})
    assert response.status_code == 200
    assert (response.json["affected_users"], response.json["user_ids"], response.json["applied"]) == (0, [], True)
    missing = api.post(f"{CANONICAL}/999/propagate", {"fields": ["budgets"]})
    assert missing.status_code == 404


# -- versions and audit (decisions 10, 12 and 17) ------------------------------------------------------


@FAMILIES
def test_versions_are_listed_and_read_one_by_one(api: Api, profiles: str, users: str) -> None:
    api.put(f"{profiles}/4", {"description": "v2"})
    versions = api.get(f"{profiles}/4/versions").json["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert json.loads(versions[1]["snapshot"])["description"] == "v2"
    assert versions[1]["changed_by"] == "token ...oken"
    one = api.get(f"{profiles}/4/versions/2").json["version"]
    assert one == versions[1]
    missing = api.get(f"{profiles}/4/versions/3")
    assert (missing.status_code, error_of(missing)["message"]) == (404, "Version not found")
    assert api.get(f"{profiles}/999/versions").status_code == 404


def test_a_deleted_profiles_changes_stay_in_the_audit_trail_of_all_profiles(api: Api) -> None:
    assert [r["action"] for r in api.get(f"{CANONICAL}/9/audit-logs").json["audit_logs"]] == ["create"]
    api.delete(f"{CANONICAL}/9")
    rows = audit_rows(api, "?limit=100")["audit_logs"]
    assert [r["action"] for r in rows if r["access_profile_id"] == 9] == ["delete", "create"]
    for path in ("versions", "versions/1", "audit-logs"):
        gone = api.get(f"{CANONICAL}/9/{path}")
        assert (gone.status_code, error_of(gone)["message"]) == (404, "Profile not found")


def test_every_change_is_audited_newest_first_with_the_actor(api: Api) -> None:
    start = audit_rows(api)["total_count"]
    api.put(f"{CANONICAL}/9", {"name": "Exec"})
    api.put(f"{CANONICAL}/9", {"name": "Exec"})  # no change, no row
    api.put(f"{CANONICAL}/9/deactivate")
    api.put(f"{CANONICAL}/9/deactivate")  # no change, no row
    api.post(f"{CANONICAL}/9/roles", {"role_ids": [7], "apply_to_existing": True})
    api.post(f"{CANONICAL}/9/propagate", {"fields": ["budgets"], "dry_run": True})  # dry run, no row
    api.post(f"{CANONICAL}/9/propagate", {"fields": ["budgets"]})
    api.delete(f"{CANONICAL}/9/roles/7")
    api.post(f"{CANONICAL}/9/clone", {"name": "Exec 2"}, headers={"Authorization": "Basic " + "YWxpY2U6cHc="})
    rows = audit_rows(api)
    assert rows["total_count"] == start + 6
    assert [r["action"] for r in rows["audit_logs"][:6]] == [
        "clone",
        "detach_role",
        "propagate",
        "attach_role",
        "deactivate",
        "update",
    ]
    assert rows["audit_logs"][0]["actor"] == "alice"
    assert {r["actor"] for r in rows["audit_logs"][1:6]} == {"token ...oken"}
    update = rows["audit_logs"][5]
    assert json.loads(update["previous_values"])["name"] == "Executive assistants"
    assert json.loads(update["new_values"])["name"] == "Exec"


def test_audit_filters_and_paging(api: Api) -> None:
    api.delete("/api/governance/users/u-dave/access-profiles/2")
    api.put(f"{CANONICAL}/1", {"description": "x"})
    assert [r["action"] for r in audit_rows(api, "?user_id=u-dave")["audit_logs"]] == ["detach_user"]
    updates = audit_rows(api, "?action=update")
    assert updates["total_count"] == 1 and updates["audit_logs"][0]["access_profile_id"] == 1
    everything = audit_rows(api, "?limit=100")
    page = audit_rows(api, "?limit=3&offset=2")
    assert page["audit_logs"] == everything["audit_logs"][2:5]
    assert page["total_count"] == everything["total_count"]
    assert audit_rows(api, "?action=&user_id=")["total_count"] == everything["total_count"]


# -- budget overrides (decision 18) ------------------------------------------------------------------


def override_path(copy_id: int = 4, user: str = "u-frank", budget_id: str | None = None, api: Api | None = None) -> str:
    return f"/api/governance/users/{user}/access-profiles/{copy_id}/budgets/{budget_id}/override"


@FAMILIES
def test_an_override_adds_to_one_budget_of_one_users_copy(api: Api, profiles: str, users: str) -> None:
    budget = stored_copy(api, 4)["governance"]["budgets"][0]
    path = f"{users}/u-frank/access-profiles/4/budgets/{budget['id']}/override"
    response = api.put(path, {"amount": 50, "mode": "cycles", "cycles": 2})
    assert response.status_code == 200
    shown = response.json["budget"]
    assert shown["id"] == budget["id"] and shown["max_limit"] == budget["max_limit"]
    assert (shown["override_amount"], shown["override_mode"], shown["override_cycles_remaining"]) == (50, "cycles", 2)
    assert shown["effective_max_limit"] == budget["max_limit"] + 50
    assert "template_budget_id" not in shown
    forever = api.put(path, {"amount": 10, "mode": "forever"}).json["budget"]
    assert (forever["override_mode"], forever["override_cycles_remaining"]) == ("forever", 0)
    removed = api.delete(path).json["budget"]
    assert "override_amount" not in removed and removed["effective_max_limit"] == budget["max_limit"]
    assert api.delete(path).status_code == 200  # nothing to remove is fine
    template = api.get(f"{profiles}/5").json["access_profile"]["budgets"][0]
    assert template["max_limit"] == budget["max_limit"]  # the template is untouched


def test_a_provider_budget_of_the_copy_can_be_overridden_but_not_a_template_budget(api: Api) -> None:
    governance = stored_copy(api, 4)["governance"]
    provider_budget = governance["provider_configs"][0]["budgets"][0]["id"]
    assert api.put(override_path(budget_id=provider_budget), {"amount": 1, "mode": "forever"}).status_code == 200
    template_budget = api.get(f"{CANONICAL}/5").json["access_profile"]["budgets"][0]["id"]
    refused = api.put(override_path(budget_id=template_budget), {"amount": 1, "mode": "forever"})
    assert (refused.status_code, error_of(refused)["param"]) == (404, "budget_id")
    other_user = api.put(override_path(user="u-erin", budget_id=provider_budget), {"amount": 1, "mode": "forever"})
    assert (other_user.status_code, error_of(other_user)["message"]) == (404, "User access profile not found")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 0, "mode": "forever"}, "amount"),
        ({"amount": 5, "mode": "cycles"}, "cycles"),
        ({"amount": 5, "mode": "forever", "cycles": 2}, "body"),
        ({"amount": 5, "mode": "cycles", "cycles": 0}, "cycles"),
        ({"amount": 5, "mode": "sometimes"}, "mode"),
    ],
    ids=["amount-not-positive", "cycles-missing", "cycles-with-forever", "cycles-zero", "unknown-mode"],
)
def test_a_bad_override_is_400(api: Api, body: dict[str, Any], param: str) -> None:
    budget = stored_copy(api, 4)["governance"]["budgets"][0]["id"]
    before = api.mock.store.snapshot()
    response = api.put(override_path(budget_id=budget), body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert api.mock.store.snapshot() == before


# -- virtual keys (#20, #21) ---------------------------------------------------------------------------


@FAMILIES
def test_an_extra_key_is_shown_once_and_names_are_unique(api: Api, profiles: str, users: str) -> None:
    added = api.post(f"{users}/u-erin/access-profiles/12345/virtual-keys", {"name": "erin-laptop"})
    assert added.status_code == 200
    key = added.json["virtual_key"]
    assert key["name"] == "erin-laptop" and key["value"].startswith("sk-bf-") and "****" not in key["value"]
    clash = api.post(f"{users}/u-frank/access-profiles/1/virtual-keys", {"name": "erin-laptop"})
    assert (clash.status_code, error_of(clash)["param"]) == (409, "name")
    unnamed = api.post(f"{users}/u-erin/access-profiles/1/virtual-keys")
    assert unnamed.status_code == 200 and unnamed.json["virtual_key"]["name"].startswith("u-erin-key-")
    nobody = api.post(f"{users}/u-alice/access-profiles/1/virtual-keys", {"name": "alice"})
    assert (nobody.status_code, error_of(nobody)["message"]) == (404, "User has no access profiles")


@FAMILIES
def test_deleting_a_key(api: Api, profiles: str, users: str) -> None:
    assert api.delete(f"{users}/u-erin/access-profiles/virtual-keys/vk-1").json == {"message": "Virtual key deleted"}
    (copy,) = copies_of(api, "u-erin")
    assert copy["virtual_key_ids"] == [] and copy["virtual_key_values"] == {}
    for user, key in (("u-erin", "vk-1"), ("u-erin", "vk-2"), ("nobody", "vk-3")):
        missing = api.delete(f"{users}/{user}/access-profiles/virtual-keys/{key}")
        assert (missing.status_code, error_of(missing)["message"]) == (404, "Virtual key not found for this user")
