"""The store: reset to the seed, snapshots that later changes cannot reach, and its lock."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
from conftest import FIXED_NOW, FakeClock

from mockserver.domain.fixtures import load_seed
from mockserver.domain.profiles import Profiles
from mockserver.domain.store import MemoryHistory, State, Store
from mockserver.resources import bundled_fixtures
from mockserver.spec.document import Spec

ACTOR = "tester"
TIMEOUT = 5.0  # seconds; only reached when a lock misbehaves


@pytest.fixture
def store(seed: State, clock: FakeClock) -> Store:
    return Store(seed, clock=clock)


@pytest.fixture
def profiles(store: Store, spec: Spec) -> Profiles:
    return Profiles(store, spec)


CHANGES: list[Any] = [
    pytest.param(
        lambda p: p.create({"name": "New", "budgets": [{"max_limit": 1, "reset_duration": "1d"}]}, ACTOR), id="create"
    ),
    pytest.param(lambda p: p.update(1, {"description": "changed", "budgets": []}, ACTOR), id="update"),
    pytest.param(lambda p: p.update(1, {"provider_configs": [{"provider_name": "cohere"}]}, ACTOR), id="update-nested"),
    pytest.param(lambda p: p.update(1, {"rate_limit": None}, ACTOR), id="update-clear-rate-limit"),
    pytest.param(lambda p: p.set_active(1, False, ACTOR), id="deactivate"),
    pytest.param(lambda p: p.set_active(6, True, ACTOR), id="activate"),
    pytest.param(lambda p: p.delete(1, ACTOR), id="delete"),
    pytest.param(lambda p: p.clone(1, {"name": "Copy"}, ACTOR), id="clone"),
]


def change_everything(profiles: Profiles) -> None:
    profiles.create({"name": "New"}, ACTOR)
    profiles.clone(2, {"name": "Copy"}, ACTOR)
    profiles.update(1, {"name": "Renamed", "provider_configs": [{"provider_name": "cohere"}]}, ACTOR)
    profiles.set_active(3, False, ACTOR)
    profiles.delete(4, ACTOR)
    with profiles.store.write() as state:
        state.role_attachments = (*state.role_attachments, {"id": 1, "access_profile_id": 2, "role_id": 1})
        state.user_copies = (*state.user_copies, {"id": 1, "parent_profile_id": 2, "user_id": "u-1"})


# -- reset -----------------------------------------------------------------------------------------


def test_a_new_store_holds_the_seed(store: Store, seed: State) -> None:
    assert store.snapshot() == seed


@pytest.mark.parametrize("change", CHANGES)
def test_reset_returns_to_the_seed_after_a_change(
    store: Store, profiles: Profiles, seed: State, change: Callable[[Profiles], Any]
) -> None:
    change(profiles)
    assert store.snapshot() != seed

    store.reset()

    assert store.snapshot() == seed


def test_reset_returns_to_the_seed_after_many_changes(store: Store, profiles: Profiles, seed: State) -> None:
    change_everything(profiles)
    store.reset()
    assert store.snapshot() == seed


def test_reset_also_resets_the_id_counters(store: Store, profiles: Profiles) -> None:
    first = profiles.create({"name": "New", "provider_configs": [{"provider_name": "x"}]}, ACTOR)
    store.reset()
    again = profiles.create({"name": "New", "provider_configs": [{"provider_name": "x"}]}, ACTOR)
    assert (again["id"], again["provider_configs"][0]["id"]) == (first["id"], first["provider_configs"][0]["id"])


def test_reset_twice_in_a_row_still_gives_the_seed(store: Store, profiles: Profiles, seed: State) -> None:
    change_everything(profiles)
    store.reset()
    change_everything(profiles)
    store.reset()
    assert store.snapshot() == seed


def test_the_seed_is_copied_when_the_store_is_made(spec: Spec, clock: FakeClock) -> None:
    """Changing the State object a store was built from changes neither the store nor its reset."""
    seed = load_seed(bundled_fixtures(), spec, clock)
    expected = copy.deepcopy(seed)
    store = Store(seed, clock=clock)

    seed.profiles.clear()
    seed.history.add_audit({"id": 1, "access_profile_id": None, "action": "update", "user_id": None})
    seed.counters["profile"] = 1000
    assert store.snapshot() == expected

    store.reset()
    assert store.snapshot() == expected


# -- snapshot / restore ----------------------------------------------------------------------------


def test_snapshot_restore_round_trip(store: Store, profiles: Profiles) -> None:
    profiles.update(1, {"description": "before the snapshot"}, ACTOR)
    snap = store.snapshot()
    expected = copy.deepcopy(snap)

    change_everything(profiles)
    assert store.snapshot() != expected
    store.restore(snap)

    assert store.snapshot() == expected
    assert profiles.get(1)["access_profile"]["description"] == "before the snapshot"
    assert profiles.create({"name": "Next"}, ACTOR)["id"] == 11


def test_a_snapshot_can_be_restored_more_than_once(store: Store, profiles: Profiles) -> None:
    snap = store.snapshot()
    expected = copy.deepcopy(snap)
    for _ in range(2):
        change_everything(profiles)
        store.restore(snap)
        assert store.snapshot() == expected
    assert snap == expected


@pytest.mark.parametrize("change", CHANGES)
def test_a_snapshot_is_not_reached_by_later_changes(
    store: Store, profiles: Profiles, change: Callable[[Profiles], Any]
) -> None:
    snap = store.snapshot()
    expected = copy.deepcopy(snap)
    profile_1 = snap.profiles[1]
    profile_1_as_it_was = copy.deepcopy(profile_1)

    change(profiles)

    assert snap == expected
    assert profile_1 == profile_1_as_it_was


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p.update(1, {"description": "changed"}, ACTOR), id="update"),
        pytest.param(lambda p: p.update(1, {"budgets": [], "provider_configs": []}, ACTOR), id="update-arrays"),
        pytest.param(lambda p: p.set_active(1, False, ACTOR), id="deactivate"),
    ],
)
def test_changes_replace_records_instead_of_mutating_them(
    store: Store, profiles: Profiles, change: Callable[[Profiles], Any]
) -> None:
    with store.atomic() as state:
        old = state.profiles[1]
    old_as_it_was = copy.deepcopy(old)

    change(profiles)

    with store.atomic() as state:
        new = state.profiles[1]
    assert new is not old
    assert new != old
    assert old == old_as_it_was


def test_a_restored_snapshot_is_not_reached_by_later_changes(store: Store, profiles: Profiles) -> None:
    snap = store.snapshot()
    expected = copy.deepcopy(snap)
    store.restore(snap)

    change_everything(profiles)

    assert snap == expected


# -- State -----------------------------------------------------------------------------------------


def test_next_id_counts_per_kind_from_1() -> None:
    state = State()
    assert [state.next_id("profile"), state.next_id("profile"), state.next_id("audit"), state.next_id("profile")] == [
        1,
        2,
        1,
        3,
    ]
    assert state.counters == {"profile": 3, "audit": 1}


def test_next_id_continues_from_a_counter() -> None:
    state = State(counters={"profile": 41})
    assert state.next_id("profile") == 42


def test_seed_counters_start_after_the_fixtures(seed: State) -> None:
    assert seed.counters == {
        "profile": 10,
        "provider_config": 29,
        "version": 10,
        "audit": 10,
        "role_attachment": 7,
        "user_copy": 4,
        "virtual_key": 7,
    }


def test_state_copy_has_independent_containers() -> None:
    record = {"id": 1, "name": "A"}
    state = State(
        history=MemoryHistory.of(
            [{"id": 1, "access_profile_id": 1, "version": 1}],
            [{"id": 1, "access_profile_id": 1, "action": "create", "user_id": None}],
        ),
        role_attachments=({"id": 1},),
        user_copies=({"id": 1},),
        counters={"profile": 1},
    )
    state.put_profile(record)
    expected = copy.deepcopy(state)

    duplicate = state.copy()
    duplicate.put_profile({"id": 2, "name": "B"})
    duplicate.history.add_version({"id": 2, "access_profile_id": 1, "version": 2})
    duplicate.history.add_audit({"id": 2, "access_profile_id": 1, "action": "update", "user_id": None})
    duplicate.role_attachments = (*duplicate.role_attachments, {"id": 2})
    duplicate.next_id("profile")

    assert state == expected
    assert duplicate.profiles[1] is record  # records are shared: they are never mutated


# -- atomic ----------------------------------------------------------------------------------------


def test_atomic_gives_the_current_state(store: Store, profiles: Profiles) -> None:
    profiles.update(1, {"description": "changed"}, ACTOR)
    with store.atomic() as state:
        assert state.profiles[1]["description"] == "changed"
    store.reset()
    with store.atomic() as state:
        assert state.profiles[1]["description"] != "changed"


def test_atomic_is_re_entrant(store: Store) -> None:
    """Nested use on one thread must not deadlock (the store holds an RLock)."""
    seen: list[State] = []

    def nested() -> None:
        with store.atomic() as outer, store.atomic() as inner:
            seen.extend([outer, inner])

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(TIMEOUT)

    assert not worker.is_alive(), "nested atomic() blocked: the lock is not re-entrant"
    assert len(seen) == 2
    assert seen[0] is seen[1]


def test_atomic_excludes_other_threads(store: Store) -> None:
    entered = threading.Event()

    def other() -> None:
        with store.atomic():
            entered.set()

    with store.atomic():
        worker = threading.Thread(target=other, daemon=True)
        worker.start()
        assert not entered.wait(0.2), "another thread entered atomic() while it was held"
    worker.join(TIMEOUT)
    assert entered.is_set()


def test_snapshot_and_restore_wait_for_atomic(store: Store) -> None:
    """A snapshot taken by another thread sees a read-modify-write whole, never half of it."""
    taken: list[State] = []
    worker = threading.Thread(target=lambda: taken.append(store.snapshot()), daemon=True)
    with store.write() as state:
        worker.start()
        state.history.add_audit({"id": "first half", "access_profile_id": None, "action": "x", "user_id": None})
        worker.join(0.2)
        assert not taken
        state.history.add_audit({"id": "second half", "access_profile_id": None, "action": "x", "user_id": None})
    worker.join(TIMEOUT)
    assert [row["id"] for row in taken[0].history.rows()[1][-2:]] == ["first half", "second half"]


# -- clock and ids ---------------------------------------------------------------------------------


def test_default_clock_is_aware_utc() -> None:
    now = Store(State()).clock()
    assert now.tzinfo is UTC


def test_default_new_uuid_gives_distinct_uuid4_strings() -> None:
    store = Store(State())
    first, second = store.new_uuid(), store.new_uuid()
    assert first != second
    assert uuid.UUID(first).version == 4


def test_injected_clock_and_uuids_are_used(spec: Spec) -> None:
    clock = FakeClock(FIXED_NOW)
    store = Store(State(), clock=clock, new_uuid=lambda: "the-id")
    record = Profiles(store, spec).create({"name": "A", "rate_limit": {"token_max_limit": 1}}, ACTOR)
    assert (record["created_at"], record["rate_limit"]["id"]) == ("2026-11-26T12:00:00Z", "the-id")
