"""The mock on granian's RSGI interface (server/rsgi.py), driven in-process with a stand-in for
granian's protocol object: which requests run on the event loop and which on a thread, that a request
which would wait on the loop runs again on a thread having changed nothing, the environ, the body's
bound and the faults."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import CANONICAL

from mockserver import Settings, create_app
from mockserver.server import rsgi, turns
from mockserver.server.forked import inline_of, max_body_of
from mockserver.server.rsgi import Rsgi
from mockserver.server.turns import Turns
from mockserver.storage.sqlite_file import hold

AUTH = ("authorization", "Bearer rsgi")


class Headers:
    """RSGI's headers: lower-case names, a name may come twice."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _ in self.pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def __getitem__(self, name: str) -> str:
        return next(value for key, value in self.pairs if key == name)


class Scope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    server = "127.0.0.1:8080"
    client = "127.0.0.1:50000"

    def __init__(self, method: str, path: str, query: str = "", headers: list[tuple[str, str]] | None = None) -> None:
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = Headers(headers if headers is not None else [AUTH])


class Stream:
    def __init__(self, proto: Proto) -> None:
        self.proto = proto

    async def send_bytes(self, data: bytes) -> None:
        self.proto.sent.append(data)


class Proto:
    """What the app answered, and how much of the body it read."""

    def __init__(self, body: bytes = b"", chunk: int = 1 << 16) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
        self.read = 0
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent: list[bytes] = []
        self.streamed = False
        self.whole = 0  # reads of the whole body at once (``await proto()``)

    async def __call__(self) -> bytes:
        self.whole += 1
        body = b"".join(self.chunks)
        self.chunks, self.read = [], self.read + len(body)
        return body

    def __aiter__(self) -> Proto:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        chunk = self.chunks.pop(0)
        self.read += len(chunk)
        return chunk

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.sent = status, headers, [body]

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Stream:
        self.status, self.headers, self.streamed = status, headers, True
        return Stream(self)

    def json(self) -> Any:
        return orjson.loads(b"".join(self.sent))


class Served:
    """An app behind ``Rsgi`` on an event loop of this test's own, as granian's worker runs it."""

    def __init__(self, settings: Settings) -> None:
        self.flask = create_app(settings)
        self.threads: list[int] = []  # the thread that ran each request's app
        flask = self.flask

        self.names: list[str] = []  # and its name

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            self.threads.append(threading.get_ident())
            self.names.append(threading.current_thread().name)
            return flask(environ, start_response)

        self.rsgi = Rsgi(Turns(app), 4, inline_of(self.flask), max_body_of(self.flask))
        self.loop = asyncio.new_event_loop()
        self.loop_thread = 0

        def init() -> None:
            self.loop_thread = threading.get_ident()
            self.rsgi.__rsgi_init__(self.loop)

        self.loop.call_soon(init)
        self.loop.run_until_complete(asyncio.sleep(0))

    def __call__(self, *requests: tuple[Scope, Proto]) -> list[Proto]:
        async def all_of() -> None:
            await asyncio.gather(*(self.rsgi.__rsgi__(scope, proto) for scope, proto in requests))

        self.loop.run_until_complete(all_of())
        return [proto for _, proto in requests]

    def one(self, scope: Scope, body: bytes = b"") -> Proto:
        return self((scope, Proto(body)))[0]

    def close(self) -> None:
        self.rsgi.__rsgi_del__(self.loop)
        self.loop.close()
        turns._loop = None  # this test's thread is no event loop's after it


@pytest.fixture
def served() -> Iterator[Served]:
    made = Served(Settings())
    yield made
    made.close()


def json_body(data: Any) -> tuple[list[tuple[str, str]], bytes]:
    body = orjson.dumps(data)
    return [AUTH, ("content-type", "application/json"), ("content-length", str(len(body)))], body


def test_with_the_state_in_memory_every_request_runs_on_the_loop(served: Served) -> None:
    assert served.rsgi.inline == "all"
    got = served.one(Scope("GET", f"{CANONICAL}/1"))
    assert got.status == 200 and got.json()["access_profile"]["id"] == 1
    headers, body = json_body({"name": "made on the loop", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})
    made = served.one(Scope("POST", CANONICAL, headers=headers), body)
    assert made.status == 201
    assert served.threads == [served.loop_thread] * 2


def test_a_delayed_request_runs_again_on_a_thread_having_changed_nothing(served: Served) -> None:
    """The delay is known before the operation runs: the loop gives the request up, and a thread runs it
    from the start. One profile is made, the journal has one entry, and the answer waited."""
    headers, body = json_body({"name": "made once", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})
    started = time.monotonic()
    made = served.one(Scope("POST", CANONICAL, headers=[*headers, ("prefer", "delay=300")]), body)
    assert time.monotonic() - started >= 0.3
    assert made.status == 201
    assert served.threads[0] == served.loop_thread and served.threads[1] != served.loop_thread
    mock = served.flask.extensions["mockserver"]
    assert sum(p["name"] == "made once" for p in mock.profiles.list({"limit": 500})["access_profiles"]) == 1
    assert [entry.status for entry in mock.journal.entries()] == [201]


def test_delayed_answers_wait_on_threads_while_the_loop_answers_others(served: Served) -> None:
    delayed = [(Scope("GET", f"{CANONICAL}/1", headers=[AUTH, ("prefer", "delay=600")]), Proto()) for _ in range(4)]
    quick: list[float] = []
    started = time.monotonic()

    async def both() -> None:
        waits = [asyncio.ensure_future(served.rsgi.__rsgi__(s, p)) for s, p in delayed]
        await asyncio.sleep(0.1)
        proto = Proto()
        await served.rsgi.__rsgi__(Scope("GET", f"{CANONICAL}/2"), proto)
        quick.append(time.monotonic() - started)
        assert proto.status == 200
        await asyncio.gather(*waits)

    served.loop.run_until_complete(both())
    took = time.monotonic() - started
    assert quick[0] < 0.4, quick  # answered on the loop while the four slept on threads
    assert 0.6 <= took < 1.2, took  # the four waited at once
    assert [p.status for _, p in delayed] == [200] * 4


def test_chaos_draws_once_for_a_request_that_runs_again() -> None:
    """--latency with --error-rate and --seed: the loop gives each request up before chaos draws, so the
    statuses are those of the same seed without the loop."""
    settings = Settings(latency_ms=1, error_rate=0.5, seed=7)
    alone = create_app(settings).test_client()
    expected = [alone.get(f"{CANONICAL}/1", headers={"Authorization": "Bearer rsgi"}).status_code for _ in range(12)]
    served = Served(settings)
    try:
        got = [served.one(Scope("GET", f"{CANONICAL}/1")).status for _ in range(12)]
    finally:
        served.close()
    assert got == expected
    assert len(set(expected)) > 1  # chaos did answer some with an error


@pytest.fixture
def on_a_file(tmp_path: Path) -> Iterator[Served]:
    """One process's app on a state file."""
    made = Served(Settings(state=tmp_path / "state.sqlite"))
    yield made
    made.close()
    made.flask.extensions["mockserver"].store.close()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[Served, Any]]:
    """What ``--workers 2`` on a file builds: this worker's app on the loop, and the other's test client."""
    file = tmp_path / "state.sqlite"
    held = hold(file)
    other = create_app(Settings(state=file, workers=2)).test_client()
    served = Served(Settings(state=file, workers=2))
    yield served, other
    served.close()
    for app in (served.flask, other.application):
        app.extensions["mockserver"].store.close()
    os.close(held)


def test_with_a_state_file_reads_run_on_the_loop_and_writes_on_the_writes_thread(on_a_file: Served) -> None:
    """Writes to one process's state file take the store's lock one at a time anyway; on threads of their
    own, their Python after the sync ran beside the loop's reads (GET one beside 4 writers: 2.3 times its
    p50 alone, 1.7 times with one thread for the writes)."""
    served = on_a_file
    assert served.rsgi.inline == "reads"
    assert served.one(Scope("GET", f"{CANONICAL}/1")).status == 200
    for text in ("saved on the writes' thread", "and again"):
        headers, body = json_body({"description": text})
        assert served.one(Scope("PUT", f"{CANONICAL}/1", headers=headers), body).status == 200
    assert served.threads[0] == served.loop_thread
    assert served.names[1:] == ["mockserver-writes_0"] * 2


def test_delayed_writes_to_a_state_file_wait_at_once_on_threads_and_change_the_state_once_each(
    on_a_file: Served,
) -> None:
    """A delay would hold every write behind it on the writes' thread: the write runs again, from the start,
    on a thread of ``--threads``, having changed nothing."""
    served = on_a_file
    before = served.one(Scope("GET", f"{CANONICAL}/1")).json()["access_profile"]["version"]
    requests = []
    for n in range(4):
        headers, body = json_body({"description": f"delayed {n}"})
        requests.append((Scope("PUT", f"{CANONICAL}/1", headers=[*headers, ("prefer", "delay=400")]), Proto(body)))
    started = time.monotonic()
    answered = served(*requests)
    took = time.monotonic() - started
    assert [p.status for p in answered] == [200] * 4
    assert 0.4 <= took < 1.2, took  # the four waited at once, not one after the other (1.6 s)
    after = served.one(Scope("GET", f"{CANONICAL}/1")).json()["access_profile"]["version"]
    assert after == before + 4
    ran = served.names[1:-1]
    assert ran.count("mockserver-writes_0") == 4  # each began there, and gave the delay up
    assert sum(name.startswith("mockserver_") for name in ran) == 4


def elsewhere(call: Any) -> Any:
    """``call()`` on a thread of its own: this test's thread runs the event loop (another worker's
    request here would be taken for one on the loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def test_with_a_state_shared_on_a_file_the_default_state_s_reads_run_on_the_loop_and_see_other_workers_writes(
    two_workers: tuple[Served, Any],
) -> None:
    """Two workers' apps on one file (``--workers 2``). A read of the default state runs on the loop,
    its catch-up included: after the other worker's write it reads the change there, without a thread.
    A read naming a session asks the engine for the session: it runs again on a thread, and the mock's
    own routes run on one from the start."""
    served, other = two_workers
    assert served.rsgi.inline == "shared-reads"
    first = served.one(Scope("GET", f"{CANONICAL}/1")).json()["access_profile"]["version"]
    changed = elsewhere(
        lambda: other.put(f"{CANONICAL}/1", json={"description": "by the other worker"}, headers=[AUTH])
    )
    assert changed.status_code == 200
    seen = served.one(Scope("GET", f"{CANONICAL}/1")).json()["access_profile"]
    assert seen["version"] == first + 1 and seen["description"] == "by the other worker"
    assert served.threads == [served.loop_thread] * 2
    named = served.one(Scope("GET", f"{CANONICAL}/1", headers=[AUTH, ("x-mockserver-session", "s1")]))
    assert named.status == 200 and named.json()["access_profile"]["version"] == first  # the session's own
    assert served.threads[2] == served.loop_thread and served.threads[3] != served.loop_thread
    assert served.one(Scope("GET", "/__mock/journal", headers=[AUTH])).status == 200
    assert len(served.threads) == 5 and served.threads[4] != served.loop_thread


def test_a_catch_up_that_finds_a_write_holding_the_store_s_lock_runs_again_on_a_thread(
    two_workers: tuple[Served, Any],
) -> None:
    served, other = two_workers
    store = served.flask.extensions["mockserver"].store
    made = elsewhere(lambda: other.put(f"{CANONICAL}/1", json={"description": "to catch up"}, headers=[AUTH]))
    assert made.status_code == 200
    taken, release = threading.Event(), threading.Event()

    def writer() -> None:  # what a write of this worker does: hold the store's lock through its save
        with store._lock:
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=writer)
    holder.start()
    taken.wait(5)
    threading.Timer(0.2, release.set).start()
    seen = served.one(Scope("GET", f"{CANONICAL}/1")).json()["access_profile"]
    holder.join()
    assert seen["description"] == "to catch up"
    assert served.threads[0] == served.loop_thread and served.threads[1] != served.loop_thread


def test_the_environ_is_as_granian_s_wsgi_interface_makes_it(served: Served) -> None:
    scope = Scope(
        "GET",
        "/a b/é",
        "x=%20y",
        [("host", "h:1"), ("x-a", "1"), ("x-a", "2"), ("content-type", "text/plain"), ("content-length", "0")],
    )
    environ = served.rsgi._environ(scope, b"")
    assert environ["PATH_INFO"] == "/a b/é".encode().decode("latin-1")  # WSGI: the bytes as Latin-1
    assert environ["QUERY_STRING"] == "x=%20y"
    assert environ["HTTP_X_A"] == "1,2"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "0"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == (
        "127.0.0.1",
        "8080",
        "127.0.0.1",
    )
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["wsgi.url_scheme"] == "http"


def test_a_body_over_the_limit_is_read_no_further_than_the_limit_and_refused(served: Served) -> None:
    limit = served.rsgi.max_body
    body = b"x" * (limit * 3)
    proto = Proto(body)
    headers = [AUTH, ("content-type", "application/json"), ("content-length", str(len(body)))]
    served((Scope("POST", CANONICAL, headers=headers), proto))
    assert proto.status == 413
    assert proto.read <= limit + (1 << 16)  # one chunk past the limit at most
    assert proto.json()["error"]["type"] == "payload_too_large"
    assert proto.whole == 0  # streamed, so that it could stop at the limit


def test_a_body_within_the_limit_with_its_length_is_read_in_one_call(served: Served) -> None:
    """One call for the whole body: each chunk of a body read in parts costs granian's thread a hand-over
    of the interpreter lock (POST served about 20% more requests/s read this way)."""
    headers, body = json_body({"name": "one read", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})
    proto = Proto(body, chunk=8)
    served((Scope("POST", CANONICAL, headers=headers), proto))
    assert proto.status == 201 and proto.json()["access_profile"]["name"] == "one read"
    assert proto.whole == 1 and proto.read == len(body)


def test_fault_empty_shuts_the_connection_and_answers_nothing(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    shut: list[str] = []
    monkeypatch.setattr(rsgi, "_shut", lambda scope: shut.append(scope.client))
    proto = served.one(Scope("GET", f"{CANONICAL}/1", headers=[AUTH, ("prefer", "fault=empty")]))
    assert proto.status is None and proto.sent == []
    assert shut == ["127.0.0.1:50000"]


def test_fault_truncate_streams_half_the_body_then_shuts_the_connection(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    shut: list[str] = []
    monkeypatch.setattr(rsgi, "_shut", lambda scope: shut.append(scope.client))
    whole = served.one(Scope("GET", f"{CANONICAL}/1"))
    proto = served.one(Scope("GET", f"{CANONICAL}/1", headers=[AUTH, ("prefer", "fault=truncate")]))
    assert proto.streamed and proto.status == 200
    assert b"".join(proto.sent) == b"".join(whole.sent)[: len(b"".join(whole.sent)) // 2]
    assert ("Content-Length", str(len(b"".join(whole.sent)))) in proto.headers
    assert shut == ["127.0.0.1:50000"]


def test_nothing_waits_on_the_loop_s_thread() -> None:
    turns.serve_inline_here()
    try:
        for wait in (turns.pause, turns.leave):
            with pytest.raises(turns.Rerun), wait():
                pass
        with pytest.raises(turns.Rerun):
            turns.must_not_wait()
    finally:
        turns._loop = None
    turns.must_not_wait()  # any other thread may wait


def test_a_body_sent_without_a_length_is_counted_to_its_end_and_refused_by_its_size(served: Served) -> None:
    """Chunked: no Content-Length to refuse it by. Its size is counted (none of it kept past the bound),
    so the answer is the 413 that names the size, not a complaint about JSON cut in the middle."""
    limit = served.rsgi.max_body
    body = orjson.dumps({"name": "x" * (2 * limit), "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})
    proto = Proto(body)
    headers = [AUTH, ("content-type", "application/json"), ("transfer-encoding", "chunked")]
    served((Scope("POST", CANONICAL, headers=headers), proto))
    assert proto.read == len(body)
    assert proto.status == 413
    assert proto.json()["error"]["message"] == f"request body is {len(body)} bytes; the limit is {limit}"
    small = orjson.dumps({"name": "chunked", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})
    made = served.one(Scope("POST", CANONICAL, headers=headers), small)
    assert made.status == 201 and made.json()["access_profile"]["name"] == "chunked"
