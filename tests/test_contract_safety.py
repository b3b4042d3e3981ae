"""What a contract run may change: names, targets, and the guard in front of every request."""

from __future__ import annotations

import json

import pytest

from mockserver.contract.safety import NAME_PREFIX, NOT_AN_ID, Guard, Ownership, is_numeric_free, profile_id_of

BASE = "http://deployment.test:8080"
COLLECTIONS = ("/api/governance/access-profiles", "/api/access-profiles")


@pytest.fixture
def ownership() -> Ownership:
    owned = Ownership(token="run1", max_name_length=255)
    owned.adopt(42)
    return owned


def test_the_prefix_is_recognisable_and_unique_per_run() -> None:
    assert Ownership(token="abc", max_name_length=255).prefix == "mockserver-contract-abc-"
    first, second = Ownership(max_name_length=255), Ownership(max_name_length=255)
    assert first.prefix.startswith(NAME_PREFIX) and first.prefix != second.prefix


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Platform", "mockserver-contract-run1-Platform"),
        ("  padded ", "mockserver-contract-run1-  padded "),
        ("mockserver-contract-run1-already", "mockserver-contract-run1-already"),
        # blank or not a string: invalid, and a prefix would make it valid
        ("", ""),
        ("   ", "   "),
        (None, None),
        (17, 17),
    ],
    ids=["plain", "padded", "already-marked", "empty", "blank", "null", "number"],
)
def test_names_get_the_prefix_only_when_they_are_valid(ownership: Ownership, sent: object, stored: object) -> None:
    assert ownership.name(sent) == stored


@pytest.mark.parametrize(
    ("length", "marked_length"),
    # the prefix is 25 characters long; 255 is the limit
    [(200, 225), (230, 255), (231, 231), (255, 255), (256, 256), (300, 300)],
)
def test_long_names_keep_their_length_so_they_stay_valid_or_invalid(
    ownership: Ownership, length: int, marked_length: int
) -> None:
    marked = ownership.name("x" * length)
    assert marked.startswith(ownership.prefix)
    assert len(marked) == marked_length


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (42, True),
        ("42", True),
        (7, False),
        ("7", False),
        ("042", False),
        ("4.2", False),
        ("-42", False),
        ("٤٢", False),  # Arabic-Indic digits: a lenient server might read them
        ("²", False),
        ("abc", True),  # no server can read a profile id out of it
        ("", True),
        (True, True),
    ],
)
def test_a_change_may_target_only_live_profiles_of_the_run_or_values_without_digits(
    ownership: Ownership, value: object, allowed: bool
) -> None:
    assert ownership.may_change(value) is allowed


def test_a_deleted_profile_is_no_target_for_new_changes(ownership: Ownership) -> None:
    ownership.release(42)
    assert not ownership.may_change(42)
    assert ownership.owns(42) and not ownership.is_live(42)
    assert ownership.live() == [] and ownership.created() == [42]


def test_releasing_a_profile_of_someone_else_records_nothing(ownership: Ownership) -> None:
    ownership.release(7)
    assert not ownership.owns(7)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        (42, 42),  # the run's own: unchanged
        (7, 99),  # another integer: the anchor, as an int
        ("7", "99"),  # the same as text (the coverage phase sends them so)
        ("-3", "99"),
        ("1.5", NOT_AN_ID),  # meant to be invalid: stays invalid
        ("01", NOT_AN_ID),
        ([1, 2], NOT_AN_ID),
        ("abc", "abc"),
    ],
)
def test_retarget_keeps_valid_integers_valid_and_invalid_values_invalid(
    ownership: Ownership, value: object, target: object
) -> None:
    assert ownership.retarget(value, lambda: 99) == target


def test_retarget_creates_the_anchor_only_when_needed(ownership: Ownership) -> None:
    def anchor() -> int:
        raise AssertionError("no anchor needed")

    assert ownership.retarget(42, anchor) == 42
    assert ownership.retarget("abc", anchor) == "abc"


def test_profile_id_of_reads_only_plain_decimals() -> None:
    assert [profile_id_of(v) for v in (5, "5", "05", "+5", True, None, "5 ")] == [5, 5, None, None, None, None, None]
    assert is_numeric_free("not-a-profile-id") and not is_numeric_free("x١")


@pytest.fixture
def guard(ownership: Ownership) -> Guard:
    return Guard(ownership, BASE, COLLECTIONS)


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("method", "url", "sent"),
    [
        ("GET", f"{BASE}/api/governance/access-profiles/7", None),
        ("DELETE", f"{BASE}/api/governance/access-profiles/42", None),
        ("PUT", f"{BASE}/api/access-profiles/42/activate", None),
        ("PUT", f"{BASE}/api/governance/access-profiles/42", body(name="mockserver-contract-run1-renamed")),
        ("POST", f"{BASE}/api/governance/access-profiles", body(name="mockserver-contract-run1-new")),
        ("POST", f"{BASE}/api/governance/access-profiles", body(name="  ")),  # invalid: the API refuses it
        ("POST", f"{BASE}/api/governance/access-profiles", b"\xff not json"),
        ("PATCH", f"{BASE}/api/governance/access-profiles/not-a-profile-id", None),
        ("DELETE", f"{BASE}/api/governance/access-profiles/a%2Fb", None),
        ("TRACE", f"{BASE}/api/governance/access-profiles", None),
    ],
)
def test_the_guard_lets_reads_and_changes_to_the_runs_own_profiles_through(
    guard: Guard, method: str, url: str, sent: bytes | None
) -> None:
    assert guard.refusal(method, url, sent) is None


@pytest.mark.parametrize(
    ("method", "url", "sent", "reason"),
    [
        ("PUT", f"{BASE}/api/governance/access-profiles/7", None, "profile '7' was not created by this run"),
        ("DELETE", f"{BASE}/api/access-profiles/7", None, "profile '7' was not created by this run"),
        ("POST", f"{BASE}/api/governance/access-profiles/7/clone", None, "profile '7' was not created"),
        ("PUT", f"{BASE}/api/governance/access-profiles/%37", None, "profile '7' was not created"),
        ("QUERY", f"{BASE}/api/governance/access-profiles/07", None, "profile '07' was not created"),
        ("DELETE", f"{BASE}/api/governance/access-profiles/%D9%A4", None, "was not created by this run"),
        ("DELETE", f"{BASE}/api/governance/access-profiles", None, "never sends DELETE to the profile collection"),
        ("POST", f"{BASE}/api/governance/access-profiles", body(name="Finance"), "lacks this run's prefix"),
        ("PUT", f"{BASE}/api/governance/access-profiles/42", body(name="Other"), "lacks this run's prefix"),
        ("POST", f"{BASE}/api/governance/roles", None, "not a profile path this run may change"),
        ("POST", "http://elsewhere.test/api/governance/access-profiles", None, "outside the deployment"),
    ],
)
def test_the_guard_refuses_everything_else(
    guard: Guard, method: str, url: str, sent: bytes | None, reason: str
) -> None:
    refusal = guard.refusal(method, url, sent)
    assert refusal is not None and reason in refusal


def test_the_guard_keeps_to_the_base_path_of_the_deployment(ownership: Ownership) -> None:
    guard = Guard(ownership, "https://gw.test/bifrost/", COLLECTIONS)
    assert guard.refusal("DELETE", "https://gw.test/bifrost/api/access-profiles/42", None) is None
    assert "outside" in (guard.refusal("DELETE", "https://gw.test/api/access-profiles/42", None) or "")
    assert "outside" in (guard.refusal("DELETE", "https://gw.test/bifrostx/api/access-profiles/42", None) or "")


def test_a_read_only_guard_refuses_every_change(ownership: Ownership) -> None:
    guard = Guard(ownership, BASE, COLLECTIONS, read_only=True)
    assert guard.refusal("OPTIONS", f"{BASE}/api/access-profiles", None) is None
    refusal = guard.refusal("DELETE", f"{BASE}/api/access-profiles/42", None)
    assert refusal is not None and "read-only" in refusal


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ({"role_ids": [1]}, False),
        ({"role_ids": [1], "is_default": False, "apply_to_existing": False}, False),
        ({"role_ids": [1], "is_default": True}, True),
        ({"role_ids": [1], "apply_to_existing": True}, True),
    ],
    ids=["plain", "flags-false", "is-default", "apply-to-existing"],
)
def test_attaching_roles_never_reaches_other_profiles_or_users(body: dict[str, object], refused: bool) -> None:
    ownership = Ownership(token="t", max_name_length=255)
    ownership.adopt(5)
    guard = Guard(ownership, "http://api.test", ("/api/governance/access-profiles",))
    reason = guard.refusal("POST", "http://api.test/api/governance/access-profiles/5/roles", json.dumps(body))
    assert (reason is not None) == refused


def test_changes_to_users_copies_are_never_sent() -> None:
    guard = Guard(Ownership(token="t", max_name_length=255), "http://api.test", ("/api/governance/access-profiles",))
    for method, path in (
        ("DELETE", "/api/governance/users/u-1/access-profiles/3"),
        ("PUT", "/api/governance/users/u-1/access-profiles/3/budgets/b/override"),
        ("POST", "/api/governance/users/u-1/access-profiles/3/virtual-keys"),
    ):
        assert guard.refusal(method, f"http://api.test{path}", None) is not None


def test_a_key_is_minted_only_for_a_user_the_run_made_up() -> None:
    """A made-up user holds no profile, so the deployment can only refuse the key (404): nothing changes."""
    ownership = Ownership(token="t", max_name_length=255)
    guard = Guard(ownership, "http://api.test", ("/api/governance/access-profiles",))
    made_up = f"{ownership.prefix}c-user"
    body = json.dumps({"name": f"{ownership.prefix}c-key"})
    for root in ("/api/governance", "/api"):
        assert guard.refusal("POST", f"http://api.test{root}/users/{made_up}/virtual-keys", body) is None
        for user in ("u-erin", "mockserver-contract-other-run-user"):
            refusal = guard.refusal("POST", f"http://api.test{root}/users/{user}/virtual-keys", body)
            assert refusal is not None and "made-up users" in refusal
        # The deprecated way in, and deletes, stay refused even for a made-up user.
        assert guard.refusal("POST", f"http://api.test{root}/users/{made_up}/access-profiles/1/virtual-keys", body)
        assert guard.refusal("DELETE", f"http://api.test{root}/users/{made_up}/virtual-keys", None)
    # The key's name must be the run's too.
    unmarked = json.dumps({"name": "laptop"})
    assert guard.refusal("POST", f"http://api.test/api/governance/users/{made_up}/virtual-keys", unmarked)
