"""The tour of ``mockserver diff`` as data: what it covers, and that it only ever changes its own profiles."""

from __future__ import annotations

import re

from mockserver.drift.tour import RUN_USER, Name, Saved, Step, tags, tour
from mockserver.resources import bundled_spec
from mockserver.spec.document import Spec

TOUR = tour(Spec.load(bundled_spec()))

SAVED_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")


def saved_names(value: object) -> set[str]:
    if isinstance(value, Saved):
        return {value.profile}
    if isinstance(value, dict):
        return set().union(*(saved_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(saved_names(item) for item in value))
    return set()


def test_each_step_has_a_title_of_its_own() -> None:
    titles = [step.title for step in TOUR]
    assert len(titles) == len(set(titles))


def test_a_step_names_only_profiles_an_earlier_step_created() -> None:
    created: set[str] = {RUN_USER}  # the run's made-up user is there from the start
    assert not any(step.saves == RUN_USER for step in TOUR)
    for step in TOUR:
        used = set(SAVED_PLACEHOLDER.findall(step.path)) | saved_names(step.body)
        assert used <= created, (step.title, used - created)
        if step.saves:
            assert step.method == "POST"
            created.add(step.saves)


def test_changes_go_to_the_collection_or_to_the_tours_own_profiles() -> None:
    """The guard refuses anything else; the tour is written so that it never has to."""
    for step in TOUR:
        if step.changes and step.users:
            # a user's keys: only minted, and only for the run's made-up user
            assert (step.method, step.path) == ("POST", "/{" + RUN_USER + "}/virtual-keys"), step.title
        elif step.changes:
            assert step.path == "" and step.method == "POST" or step.path.startswith("/{"), step.title
        name = step.body.get("name") if isinstance(step.body, dict) else None
        # a name is the run's (a Name), blank or not a string, which no server stores
        assert isinstance(name, Name) or not isinstance(name, str) or not name.strip(), step.title


def test_the_tour_covers_what_the_mock_decides() -> None:
    def sent(step: Step, field: str, value: object) -> bool:
        return isinstance(step.body, dict) and step.body.get(field) == value

    posts = [step for step in TOUR if step.method == "POST" and step.path == ""]
    puts = [step for step in TOUR if step.method == "PUT" and step.path == "/{a}"]
    assert any(sent(step, "tags", tags(51)) for step in posts)  # create has no size limits
    assert any(sent(step, "tags", tags(50)) for step in puts) and any(sent(step, "tags", tags(51)) for step in puts)
    names = [step.body.get("name") for step in TOUR if isinstance(step.body, dict)]
    assert {255, 256} <= {name.length for name in names if isinstance(name, Name)}
    assert any(sent(step, "rate_limit", None) for step in puts)
    paths = {step.path for step in TOUR}
    assert {
        "/{a}/activate",
        "/{a}/deactivate",
        "/{a}/clone",
        "/{a}/versions",
        "/{a}/audit-logs",
        "/audit-logs",
    } <= paths
    assert {"/0", "/9223372036854775808", "/abc", "/1.5"} <= paths  # unknown and malformed ids
    queries = [step.query for step in TOUR if step.method == "GET" and step.path == ""]
    assert any("offset" in q and "limit" in q for q in queries) and any(q.get("tags") for q in queries)
    assert {step.auth for step in TOUR} == {"run", "none", "unknown"}
    assert any(step.method == "DELETE" and step.path == "/{copy}" for step in TOUR)
    # The user's keys and the caller's key-creation policy (contract section 1.1).
    users = {(step.method, step.path) for step in TOUR if step.users}
    assert users == {
        ("GET", "/{user}/virtual-keys"),
        ("POST", "/{user}/virtual-keys"),
        ("GET", "/me/vk-creation-policy"),
    }
    assert {step.path for step in TOUR if step.canonical_only} == {"/{user}/virtual-keys", "/me/vk-creation-policy"}
    assert not any(step.canonical_only for step in TOUR if step.method == "GET" and step.path == "/{user}/virtual-keys")
