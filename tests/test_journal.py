"""The request journal: numbered entries, reading only the new ones, bodies capped, credentials masked."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import CANONICAL, Api

from mockserver.server.journal import BODY_CAP, Entry, Journal, masked


def entry(path: str = "/x", status: int = 200, **fields: Any) -> Entry:
    return Entry(
        method="GET",
        path=path,
        query={},
        operation_id=None,
        canonical_id=None,
        status=status,
        duration_ms=1.0,
        **fields,
    )


def test_entries_are_numbered_in_the_order_recorded_and_read_after_a_number() -> None:
    journal = Journal(size=3)
    assert journal.window() == (1, 0)  # empty: the next entry will be 1
    for n in range(5):
        journal.record(entry(f"/{n}"))
    assert [e.seq for e in journal.entries()] == [3, 4, 5]  # the oldest two dropped out
    assert journal.window() == (3, 5)
    assert [e.path for e in journal.entries(after=3)] == ["/3", "/4"]
    assert journal.entries(after=5) == []
    assert [e.seq for e in journal.entries(after=0)] == [3, 4, 5]
    assert journal.get(4) is not None and journal.get(4).path == "/3"  # type: ignore[union-attr]
    assert journal.get(2) is None and journal.get(6) is None


def test_clearing_keeps_the_numbering_going() -> None:
    journal = Journal()
    journal.record(entry())
    journal.record(entry())
    journal.clear()
    assert journal.window() == (3, 2)  # a reader that holds 1 and 2 learns both are gone
    journal.record(entry())
    assert [e.seq for e in journal.entries(after=2)] == [3]
    assert journal.get(1) is None


def test_numbers_stay_in_order_when_threads_record_at_once() -> None:
    journal = Journal(size=10_000)

    def record() -> None:
        for _ in range(500):
            journal.record(entry())

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in journal.entries()] == list(range(1, 2001))


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer sk-secret-123", "Bearer ****"),
        ("Authorization", "Basic YWRtaW46cHc=", "Basic ****"),
        ("Authorization", "rawtoken", "****"),
        ("Proxy-Authorization", "Basic eDp5", "Basic ****"),
        ("Cookie", "session=abc; theme=dark", "****"),
        ("X-Api-Key", "k-123", "****"),
        ("X-Auth-Token", "t", "****"),
        ("X-Session-Id", "s", "****"),
        ("Content-Type", "application/json", "application/json"),
        ("User-Agent", "my-ui/1.0", "my-ui/1.0"),
    ],
)
def test_credentials_are_masked(name: str, value: str, shown: str) -> None:
    assert masked(name, value) == shown


def test_the_answers_challenge_is_not_a_secret() -> None:
    assert masked("WWW-Authenticate", 'Bearer realm="bifrost"', by_word=False) == 'Bearer realm="bifrost"'
    assert masked("Set-Cookie", "session=abc", by_word=False) == "****"


def test_an_entry_keeps_what_was_sent_and_answered(api: Api) -> None:
    response = api.put(
        f"{CANONICAL}/1?x=1",
        {"tags": [f"t{i}" for i in range(51)]},
        headers={"X-Api-Key": "k-secret", "X-Request-Id": "r-1"},
    )
    assert response.status_code == 400
    [recorded] = api.mock.journal.entries()
    details = recorded.details()
    headers = dict(details["request"]["headers"])
    assert headers["Authorization"] == "Bearer ****"
    assert headers["X-Api-Key"] == "****"
    assert headers["X-Request-Id"] == "r-1"
    assert headers["Content-Type"] == "application/json"
    assert "dev-token" not in json.dumps(details) and "k-secret" not in json.dumps(details)
    assert details["request"]["query"] == {"x": ["1"]}
    sent = json.loads(details["request"]["body"]["text"])
    assert sent == {"tags": [f"t{i}" for i in range(51)]} and details["request"]["body"]["cut"] is False
    assert details["answer"]["status"] == 400
    assert dict(details["answer"]["headers"])["Content-Type"] == "application/json"
    assert json.loads(details["answer"]["body"]["text"]) == response.json
    assert (details["refused_by"], details["param"]) == ("contract", "tags")
    assert details["error"] == "tags: expected at most 50 items, got 51"


def test_an_operations_own_refusal_is_a_rule_refusal_naming_the_field(api: Api) -> None:
    assert api.get(f"{CANONICAL}/999").status_code == 404
    assert api.post(CANONICAL, {"name": "Platform engineering"}).status_code == 409
    missing, taken = api.mock.journal.entries()
    assert (missing.refused_by, missing.error, missing.param) == ("rule", "Profile not found", "profile_id")
    assert (taken.refused_by, taken.param) == ("rule", "name")
    # The spec allows these requests: the pytest plugin's "refused" is about the spec's checks only.
    assert api.mock.journal.entries(refused=True) == []


def test_requests_refused_before_their_body_was_read_still_show_it(api: Api) -> None:
    api.put(f"{CANONICAL}/1", {"name": "x"}, headers={"Authorization": ""})
    [recorded] = api.mock.journal.entries()
    assert recorded.refused_by == "auth"
    assert recorded.body == {"name": "x"}
    assert recorded.details()["request"]["body"]["text"] == '{"name": "x"}'


def test_bodies_are_capped_and_marked_cut(api: Api) -> None:
    description = "d" * (BODY_CAP * 2)
    created = api.post(CANONICAL, {"name": "big", "description": description})
    assert created.status_code == 201
    api.get(CANONICAL + "?limit=100")
    sent, listed = api.mock.journal.entries()
    assert len(sent.request_body) == BODY_CAP and sent.request_size > BODY_CAP
    assert sent.body is None  # a cut body is not parsed
    view = sent.details()["request"]["body"]
    assert view["cut"] is True and view["bytes"] == sent.request_size and len(view["text"]) == BODY_CAP
    assert len(sent.answer_body) == BODY_CAP and sent.details()["answer"]["body"]["cut"] is True
    assert len(listed.answer_body) == BODY_CAP and listed.answer_size > BODY_CAP


def test_a_body_over_the_size_limit_is_kept_only_in_part(make_app: Any) -> None:
    api = Api(make_app(max_body_bytes=BODY_CAP * 2))
    body = json.dumps({"name": "n", "description": "d" * BODY_CAP * 3})
    response = api.client.put(
        f"{CANONICAL}/1",
        data=body,
        content_type="application/json",
        headers={"Authorization": "Bearer t"},
    )
    assert response.status_code == 413
    [recorded] = api.mock.journal.entries()
    assert recorded.request_size == len(body) and len(recorded.request_body) == BODY_CAP
    assert recorded.refused_by == "contract"
