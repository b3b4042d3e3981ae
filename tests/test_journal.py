"""The request journal: numbered entries, reading only the new ones, bodies capped, credentials masked."""

from __future__ import annotations

import gc
import json
import os
import threading
import tracemalloc
from typing import Any

import pytest
from conftest import CANONICAL, Api

from mockserver import Settings, create_app
from mockserver.server.journal import (
    BODY_CAP,
    ENTRY_OVERHEAD,
    Budget,
    Entry,
    Journal,
    entry_bytes,
    environ_headers,
    masked,
)
from mockserver.settings import SettingsError


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


# -- the byte budget --------------------------------------------------------------------------------


def test_journals_sharing_a_budget_drop_their_oldest_entries_first() -> None:
    budget = Budget(limit_bytes=10 * (1000 + ENTRY_OVERHEAD))
    one, two = Journal(budget=budget), Journal(budget=budget)
    for n in range(4):
        one.record(entry(f"/one/{n}", answer_body=b"x" * 1000))
    for n in range(8):
        two.record(entry(f"/two/{n}", answer_body=b"x" * 1000))
    assert budget.used <= budget.limit
    # Twelve entries of the same size, room for ten: the two oldest of all went, both of `one`.
    assert [e.path for e in one.entries()] == ["/one/2", "/one/3"]
    assert len(two) == 8
    assert (one.dropped, two.dropped) == (2, 0)
    assert one.window() == (3, 4)  # a reader learns what was dropped, as with the entry bound
    assert budget.used == sum(entry_bytes(e) for j in (one, two) for e in j.entries())
    one.clear()
    assert budget.used == sum(entry_bytes(e) for e in two.entries())
    two.close()  # a deleted session's journal gives its bytes back
    assert budget.used == 0


def test_an_entry_bound_drop_gives_its_bytes_back() -> None:
    journal = Journal(size=3)
    for _ in range(10):
        journal.record(entry(answer_body=b"y" * 500))
    assert len(journal) == 3 and journal.dropped == 7
    assert journal.budget.used == 3 * entry_bytes(journal.entries()[0])


def test_the_journal_route_shows_its_bounds_and_what_was_dropped(make_app: Any) -> None:
    api = Api(make_app(journal_mb=1))
    for n in range(90):
        api.post(CANONICAL, {"name": f"profile {n}"})
    api.client.delete("/__mock/journal")
    for _ in range(40):  # pages of about 50 kB: 1 MiB keeps about 20
        assert api.get(f"{CANONICAL}?limit=100").status_code == 200
    listed = api.client.get("/__mock/journal").json
    assert listed["bounds"]["bytes"] == 1024 * 1024
    assert 0 < listed["bounds"]["bytes_used"] <= 1024 * 1024
    assert listed["dropped"] == 40 - len(listed["entries"]) > 0
    assert listed["oldest"] == 90 + listed["dropped"] + 1  # the creates were cleared, not dropped


def test_many_sessions_reading_long_pages_stay_within_the_journal_budget(make_app: Any) -> None:
    """The issue's load, scaled down: 8 sessions, each reading pages of ?limit=100 after 100 creates.

    Unbounded, the journals would keep 8 x 40 answers cut at 64 KiB: about 20 MB. With 2 MiB they
    keep 2 MiB, and the memory the process holds grows by no more than that and what the pages cost.
    """
    budget = 2 * 1024 * 1024
    api = Api(make_app(journal_mb=2))
    sessions = [{"X-Mockserver-Session": f"worker-{n}"} for n in range(8)]
    for headers in sessions:
        for n in range(100):
            body = {"name": f"{headers['X-Mockserver-Session']} profile {n}", "description": "d" * 200}
            assert api.post(CANONICAL, body, headers=headers).status_code == 201
    api.client.delete("/__mock/journal")
    for headers in sessions:
        api.client.delete("/__mock/journal", headers=headers)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(40):
            for headers in sessions:
                page = api.get(f"{CANONICAL}?limit=100", headers=headers)
                assert page.status_code == 200 and len(page.data) > 50_000
        del page
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    registry = api.app.extensions["mockserver.sessions"]
    journals = [api.mock.journal, *(session.mock.journal for session in registry.all())]
    kept = sum(entry_bytes(e) for journal in journals for e in journal.entries())
    assert api.mock.journal.budget.used == kept <= budget
    assert sum(journal.dropped for journal in journals) > 0
    assert grown < budget + 1024 * 1024, f"{grown / 1e6:.1f} MB retained"


def test_the_budget_is_read_from_the_environment_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCKSERVER_JOURNAL_MB", "3")
    app = create_app(Settings.from_env())
    assert app.extensions["mockserver"].journal.budget.limit == 3 * 1024 * 1024
    with pytest.raises(SettingsError, match="journal_mb: expected 1 or more, got 0"):
        create_app(Settings(journal_mb=0))


def test_the_headers_of_an_environ_that_holds_the_process_environment_are_the_requests_only() -> None:
    """granian copies the process's environment into every environ: none of it is a request header,
    while a header the request sent is kept even when the environment has a key of the same name."""
    environ = {**os.environ, "PATH": "/usr/bin", "HTTP_PROXY_FROM_ENV": "x"}
    environ.update(
        {
            "REQUEST_METHOD": "GET",
            "wsgi.input": object(),
            "HTTP_AUTHORIZATION": "Bearer t",
            "HTTP_ACCEPT": "*/*",
            "HOME": "/root",  # in the process's environment too: not a header either way
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "2",
        }
    )
    expected = sorted((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    assert environ_headers(environ) == [*expected, ("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", "2")]
    assert ("HTTP_AUTHORIZATION", "Bearer t") in environ_headers(environ)
    assert not any(key in os.environ and not key.startswith("HTTP_") for key, _ in environ_headers(environ))
