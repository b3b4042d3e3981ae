"""One turn at a time (server/turns.py): the serving threads run the mock's Python one after the other,
and give the turn up around every wait that is not CPU work, so that delayed answers still wait at
once and a read never waits for a write's sync."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CANONICAL
from serving import serve
from werkzeug.test import Client

from mockserver import Settings, create_app
from mockserver.domain.store import Store
from mockserver.server import forked, turns
from mockserver.server.turns import Turns

AUTH = {"Authorization": "Bearer turns"}
ONE = f"{CANONICAL}/1"


def test_the_app_runs_in_one_thread_at_a_time() -> None:
    inside = 0
    most = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.01)  # not given up: the others wait for the turn meanwhile
        assert turns.holding()
        inside -= 1
        start_response("200 OK", [])
        return [b""]

    client = Client(Turns(app))
    with ThreadPoolExecutor(8) as pool:
        assert all(r.status_code == 200 for r in pool.map(lambda _: client.get("/"), range(32)))
    assert most == 1
    assert not turns.holding()


def test_pause_and_leave_do_nothing_for_a_thread_without_the_turn() -> None:
    assert not turns.holding()
    with turns.pause():
        assert not turns.holding()
    with turns.leave():
        assert not turns.holding()


def test_a_paused_request_takes_the_turn_back_and_a_left_one_does_not() -> None:
    seen: dict[str, bool] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with turns.pause():
            seen["in the pause"] = turns.holding()
        seen["after the pause"] = turns.holding()
        with turns.leave():
            seen["after leaving"] = turns.holding()
        start_response("200 OK", [])
        return [b""]

    assert Client(Turns(app)).get("/").status_code == 200
    assert seen == {"in the pause": False, "after the pause": True, "after leaving": False}
    assert Client(Turns(app)).get("/").status_code == 200  # the turn was given back: the next one gets it


def test_delayed_answers_wait_at_once_and_others_are_answered_meanwhile() -> None:
    client = Client(Turns(create_app(Settings())))
    with ThreadPoolExecutor(9) as pool:
        started = time.monotonic()
        delayed = [pool.submit(client.get, ONE, headers={**AUTH, "Prefer": "delay=1000"}) for _ in range(8)]
        time.sleep(0.1)  # the 8 are asleep by now, each in its own pause
        assert client.get(ONE, headers=AUTH).status_code == 200
        assert time.monotonic() - started < 0.6  # not after the delays
        assert [f.result(timeout=10).status_code for f in delayed] == [200] * 8
        took = time.monotonic() - started
    assert 1.0 <= took < 2.0, took  # one after another: 8 s


@pytest.fixture
def blocked_saves(tmp_path: Path) -> Iterator[tuple[Client, threading.Event, threading.Event]]:
    """A mock with a state file, wrapped in the turn, whose saves wait for ``release`` (``saving`` is set
    when one starts): the disk's sync, held as long as a test likes."""
    app = create_app(Settings(state=tmp_path / "state.sqlite"))
    store = app.extensions["mockserver"].store
    saving, release = threading.Event(), threading.Event()
    save: Callable[..., None] = store.persistence.save

    def slow_save(changes: Any) -> None:
        saving.set()
        assert release.wait(10)
        save(changes)

    store.persistence.save = slow_save
    yield Client(Turns(app)), saving, release
    release.set()
    store.close()


def put(client: Client, profile: int, description: str) -> Future[Any]:
    return ThreadPoolExecutor(1).submit(
        client.put, f"{CANONICAL}/{profile}", json={"description": description}, headers=AUTH
    )


def test_a_read_is_answered_while_a_write_saves(blocked_saves: tuple[Client, threading.Event, threading.Event]) -> None:
    client, saving, release = blocked_saves
    write = put(client, 1, "written while a read goes by")
    assert saving.wait(5)
    read = ThreadPoolExecutor(1).submit(client.get, f"{CANONICAL}/2", headers=AUTH)
    assert read.result(timeout=5).status_code == 200  # with the writer holding the turn: never
    assert not write.done()
    release.set()
    assert write.result(timeout=5).status_code == 200
    assert client.get(ONE, headers=AUTH).json["access_profile"]["description"] == "written while a read goes by"


def test_a_write_that_waits_for_another_one_s_save_holds_no_one_up(
    blocked_saves: tuple[Client, threading.Event, threading.Event],
) -> None:
    """The second write waits for the store's lock outside the turn: reads go on meanwhile (had it waited in
    the turn, every request would wait for the first one's sync), and once the first save ends both
    writes finish."""
    client, saving, release = blocked_saves
    first = put(client, 1, "first")
    assert saving.wait(5)
    saving.clear()
    second = put(client, 2, "second")
    time.sleep(0.1)  # the second is waiting for the store's lock by now
    read = ThreadPoolExecutor(1).submit(client.get, f"{CANONICAL}/3", headers=AUTH)
    assert read.result(timeout=5).status_code == 200
    release.set()
    assert first.result(timeout=5).status_code == 200
    assert second.result(timeout=5).status_code == 200


def test_every_store_gives_the_turn_up_before_it_waits() -> None:
    assert Store.waiting is turns.leave  # set by mockserver.server.app, for the sessions' stores too


@pytest.mark.slow
@pytest.mark.skipif(not forked.available(), reason="granian serves only where processes fork (Linux)")
def test_on_the_default_server_delayed_answers_wait_at_once_beside_a_quick_one() -> None:
    with serve("--no-watch") as served:
        url = f"{served.url}{ONE}"
        assert requests.get(url, headers=AUTH, timeout=5).status_code == 200  # warm
        with ThreadPoolExecutor(7) as pool:
            started = time.monotonic()
            delayed = [
                pool.submit(requests.get, url, headers={**AUTH, "Prefer": "delay=1000"}, timeout=10) for _ in range(7)
            ]
            time.sleep(0.2)
            assert requests.get(url, headers=AUTH, timeout=5).status_code == 200  # the 8th thread
            assert time.monotonic() - started < 0.8
            assert [f.result().status_code for f in delayed] == [200] * 7
            took = time.monotonic() - started
        assert 1.0 <= took < 2.0, took
