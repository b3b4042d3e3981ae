"""``mockserver diff --stateful N --seed S``: sequences Schemathesis generates, as steps both sides can take."""

from __future__ import annotations

import pytest

from mockserver.contract.safety import NOT_AN_ID, Ownership
from mockserver.drift.stateful import GONE, OPERATIONS, Generated, generate, steps
from mockserver.resources import bundled_spec

COLLECTION = "/api/governance/access-profiles"


def request(operation_id: str, method: str, path: str = "", created: int | None = None, **data: object) -> Generated:
    return Generated(
        operation_id,
        method,
        COLLECTION + path,
        dict(data.get("path_parameters", {})),  # type: ignore[call-overload]
        dict(data.get("query", {})),  # type: ignore[call-overload]
        data.get("body"),
        created,
    )


def test_ids_become_the_sequences_own_profiles_or_one_that_names_nothing_and_names_get_the_prefix() -> None:
    ownership = Ownership(max_name_length=255, token="run1", namespace="mockserver-diff-")
    sequence = [
        request("createAccessProfile", "POST", created=3, body={"name": "Ops", "tags": []}),
        request("updateAccessProfile", "PUT", "/{profile_id}", path_parameters={"profile_id": 3}, body={"name": ""}),
        request(
            "cloneAccessProfile",
            "POST",
            "/{profile_id}/clone",
            path_parameters={"profile_id": 3},
            body={"name": "n" * 250},
        ),
        request("getAccessProfile", "GET", "/{profile_id}", path_parameters={"profile_id": "7"}),
        request("getAccessProfile", "GET", "/{profile_id}", path_parameters={"profile_id": -4}),
        request("deleteAccessProfile", "DELETE", "/{profile_id}", path_parameters={"profile_id": "4.5"}),
        request(
            "getAccessProfileVersion",
            "GET",
            "/{profile_id}/versions/{version}",
            path_parameters={"profile_id": 3, "version": 2},
        ),
        request(
            "listAccessProfileAuditLogsById",
            "GET",
            "/{profile_id}/audit-logs",
            path_parameters={"profile_id": 3},
            query={"limit": 2},
        ),
    ]
    converted = steps([sequence], COLLECTION, ownership)
    assert [number for number, _ in converted] == ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8"]
    first, update, clone, unknown, negative, malformed, version, audit = (step for _, step in converted)
    assert first.saves == "s1.1" and first.body == {"name": "mockserver-diff-run1-s1-Ops", "tags": []}
    assert (update.path, update.body) == ("/{s1.1}", {"name": ""})  # a blank name stays blank
    # a long name keeps its length, so it stays as valid (or not) as it was generated
    assert clone.saves == "s1.3" and len(clone.body["name"]) == 250
    assert clone.body["name"].startswith("mockserver-diff-run1-s1-")
    assert unknown.path == "/{" + GONE + "}"  # another id: a profile the run deleted, on both sides
    assert negative.path == "/-4"  # a read of an id no server can hold
    assert malformed.path == "/" + NOT_AN_ID  # a change goes only where no id can be read
    assert version.path == "/{s1.1}/versions/2"
    assert audit.query == {"limit": 2} and audit.title == "listAccessProfileAuditLogsById (generated)"


@pytest.mark.slow
def test_the_same_seed_generates_the_same_sequences_over_the_profile_operations() -> None:
    first = generate(bundled_spec(), 3, seed=11)
    assert len(first) == 3 and all(first)
    assert {request.operation_id for sequence in first for request in sequence} <= set(OPERATIONS)
    # the sequences follow the spec's links: later requests use a profile an earlier one created
    followed = 0
    for sequence in first:
        created: set[int] = set()
        for generated in sequence:
            followed += generated.path_parameters.get("profile_id") in created
            if generated.created is not None:
                created.add(generated.created)
    assert followed > 0
    assert generate(bundled_spec(), 3, seed=11) == first
