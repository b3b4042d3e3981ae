"""Several ``mockserver serve`` processes on one state behave as one mock (issue 24, items 2 to 4), shown
with real processes only: instances started as a user starts them, on free ports, over the tests' own
PostgreSQL (tests/postgres.py), and clients that send their requests at the same time from threads.

- Two instances on one database: read-your-writes both ways, no lost update, names unique, ids that never
  collide, the empty database seeded once when both start together, sessions made on one and used or
  deleted on the other.
- Faults: ``kill -9`` of one instance under load (the other keeps serving and has everything the dead one
  acknowledged); PostgreSQL stopped and started again under load (503 ``state_store_unavailable``, never a
  500 and never a wait of more than a few seconds, nothing half-applied, both recover by themselves); a
  connection dropped in the middle of a write, through ``postgres.Proxy`` (a 503, nothing changed); a
  server that hangs, its connections open (a 503 within the engine's deadlines, then recovery); a start on
  a server that cannot be reached (exit 2, the URL named without its password).
- ``--workers 2`` on one SQLite file: the same guarantees between the workers of one port.

Every count asserted here is exact (a version raised by exactly N, one 201 and N-1 409s), so a race that
loses or doubles a write fails the test instead of passing by luck.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from conftest import CANONICAL, FIXTURE_COUNTS
from postgres import Cluster, Proxy, free_port, start_cluster
from psycopg import sql
from serving import Served, serve

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer shared-state"}
SESSION_HEADER = "X-Mockserver-Session"
TIMEOUT = 10  # seconds a single request may take before the test calls it a hang


def instance(state: str, name: str, *extra: str) -> list[str]:
    """The arguments of one instance of a shared mock (``serving.serve`` adds ``--port 0``)."""
    return ["--no-watch", "--quiet", "--state", state, "--instance", name, *extra]


@contextmanager
def started_together(*commands: list[str]) -> Iterator[list[Served]]:
    """``mockserver serve`` once per argument list, all started at the same moment; stopped after."""
    managers = [serve(*args) for args in commands]
    with ExitStack() as stack:
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        failure: BaseException | None = None
        served = []
        for manager, future in zip(managers, futures, strict=True):
            try:
                served.append(future.result())
                stack.push(manager.__exit__)
            except BaseException as error:  # the others are stopped by the stack
                failure = failure or error
        if failure is not None:
            raise failure
        yield served


@contextmanager
def database(cluster: Cluster) -> Iterator[str]:
    """A new, empty database on ``cluster``; its name. Dropped after."""
    name = f"shared_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def dbname(conninfo: str) -> str:
    found = re.search(r"dbname=(\S+)", conninfo)
    assert found is not None, conninfo
    return found.group(1)


# -- HTTP ------------------------------------------------------------------------------------------


def call(
    base: str, method: str, path: str, body: Any = None, session: str | None = None, timeout: float = TIMEOUT
) -> requests.Response:
    headers = dict(AUTH)
    if session is not None:
        headers[SESSION_HEADER] = session
    return requests.request(method, f"{base}{path}", json=body, headers=headers, timeout=timeout)


def profile(base: str, profile_id: int, session: str | None = None) -> dict[str, Any]:
    answer = call(base, "GET", f"{CANONICAL}/{profile_id}", session=session)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_profile"]  # type: ignore[no-any-return]


def versions(base: str, profile_id: int) -> list[dict[str, Any]]:
    answer = call(base, "GET", f"{CANONICAL}/{profile_id}/versions")
    assert answer.status_code == 200, answer.text
    return answer.json()["versions"]  # type: ignore[no-any-return]


def named(base: str, name: str, session: str | None = None) -> list[dict[str, Any]]:
    """The profiles whose name is exactly ``name``."""
    answer = call(base, "GET", f"{CANONICAL}?search={name}&limit=100", session=session)
    assert answer.status_code == 200, answer.text
    return [p for p in answer.json()["access_profiles"] if p["name"] == name]


def at_once(n: int, job: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``job(0)`` to ``job(n - 1)``, each on a thread of its own, released together; their answers in order."""
    gate = threading.Barrier(n)

    def run(i: int) -> requests.Response:
        gate.wait()
        return job(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def is_unavailable(answer: requests.Response) -> bool:
    """A 503 in the BifrostError envelope that says the state store could not be reached."""
    if answer.status_code != 503:
        return False
    body = answer.json()
    assert body["is_bifrost_error"] is False and body["status_code"] == 503, body
    assert body["error"]["type"] == "state_store_unavailable", body
    assert "state store" in body["error"]["message"].lower(), body
    return True


# -- two instances on one PostgreSQL database ---------------------------------------------------------


@dataclass
class Pair:
    a: str
    b: str
    conninfo: str
    at_start: dict[str, Any]  # what the database and both instances held right after they started


@pytest.fixture(scope="module")
def pair(postgres_cluster: Cluster) -> Iterator[Pair]:
    """Two instances on one new database, started at the same moment."""
    with database(postgres_cluster) as name:
        url = postgres_cluster.url(name)
        with started_together(instance(url, "a"), instance(url, "b")) as (a, b):
            conninfo = postgres_cluster.conninfo(name)
            with psycopg.connect(conninfo) as db:
                found = {
                    table: db.execute(
                        sql.SQL("SELECT count(*) FROM {} WHERE session = ''").format(sql.Identifier(table))
                    ).fetchone()
                    for table in ("versions", "audit")
                }
                log = [row[0] for row in db.execute("SELECT data FROM changes WHERE session = '' ORDER BY n")]
            counts = [call(base, "GET", "/__mock/state/counts").json() for base in (a.url, b.url)]
            yield Pair(a.url, b.url, conninfo, {"rows": found, "log": log, "counts": counts})


def test_an_empty_database_is_seeded_once_when_two_instances_start_together(pair: Pair) -> None:
    for counts in pair.at_start["counts"]:
        assert {k: counts[k] for k in FIXTURE_COUNTS} == FIXTURE_COUNTS
    # A second seeding would have added history rows of its own, or replaced the first: a second log row.
    assert pair.at_start["rows"] == {
        "versions": (FIXTURE_COUNTS["versions"],),
        "audit": (FIXTURE_COUNTS["audit_logs"],),
    }
    assert [entry["kind"] for entry in pair.at_start["log"]] == ["replace"], pair.at_start["log"]


def test_a_write_acknowledged_by_one_instance_is_read_through_the_other(pair: Pair) -> None:
    for n in range(12):
        writer, reader = (pair.a, pair.b) if n % 2 == 0 else (pair.b, pair.a)
        text = f"read your writes {n} {uuid.uuid4().hex[:6]}"
        put = call(writer, "PUT", f"{CANONICAL}/2", {"description": text})
        assert put.status_code == 200, put.text
        seen = profile(reader, 2)
        assert (seen["description"], seen["version"]) == (text, put.json()["access_profile"]["version"])

        created = call(writer, "POST", CANONICAL, {"name": f"ryw {text}"})
        assert created.status_code == 201, created.text
        new_id = created.json()["access_profile"]["id"]
        assert profile(reader, new_id)["name"] == f"ryw {text}"
        assert call(reader, "DELETE", f"{CANONICAL}/{new_id}").status_code in (200, 204)
        assert call(writer, "GET", f"{CANONICAL}/{new_id}").status_code == 404


def test_concurrent_partial_updates_through_both_instances_lose_none(pair: Pair) -> None:
    n = 24
    before = profile(pair.a, 3)
    listed = len(versions(pair.b, 3))
    texts = [f"no lost update {i} {uuid.uuid4().hex[:6]}" for i in range(n)]
    answers = at_once(
        n, lambda i: call(pair.a if i % 2 else pair.b, "PUT", f"{CANONICAL}/3", {"description": texts[i]})
    )
    assert [a.status_code for a in answers] == [200] * n, [a.text for a in answers if a.status_code != 200]
    acknowledged = sorted(a.json()["access_profile"]["version"] for a in answers)
    assert acknowledged == list(range(before["version"] + 1, before["version"] + n + 1))  # each its own version
    for base in (pair.a, pair.b):
        assert profile(base, 3)["version"] == before["version"] + n
        rows = versions(base, 3)
        assert len(rows) == listed + n
        assert {r["description"] for r in rows[listed:]} == set(texts)
        assert [r["version"] for r in rows] == sorted(r["version"] for r in rows)


def test_concurrent_creates_of_one_name_through_both_instances_give_one_201(pair: Pair) -> None:
    for attempt in range(3):
        name = f"one name {attempt} {uuid.uuid4().hex[:6]}"

        def create(i: int, name: str = name) -> requests.Response:
            return call(pair.a if i % 2 else pair.b, "POST", CANONICAL, {"name": name})

        answers = at_once(10, create)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] + [409] * 9, [a.text for a in answers]
        for base in (pair.a, pair.b):
            assert len(named(base, name)) == 1


def test_concurrent_creates_through_both_instances_get_ids_that_never_collide(pair: Pair) -> None:
    names = [f"distinct {i} {uuid.uuid4().hex[:6]}" for i in range(20)]
    answers = at_once(20, lambda i: call(pair.a if i % 2 else pair.b, "POST", CANONICAL, {"name": names[i]}))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers]
    ids = [a.json()["access_profile"]["id"] for a in answers]
    assert len(set(ids)) == 20
    for base in (pair.a, pair.b):
        assert {i: profile(base, i)["name"] for i in ids} == dict(zip(ids, names, strict=True))


def test_a_session_made_on_one_instance_is_used_and_deleted_through_the_other(pair: Pair) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    made = requests.put(f"{pair.a}/__mock/sessions/{name}", timeout=TIMEOUT)
    assert made.status_code == 201, made.text
    assert requests.get(f"{pair.b}/__mock/sessions/{name}", timeout=TIMEOUT).status_code == 200

    created = call(pair.b, "POST", CANONICAL, {"name": "in the session"}, session=name)
    assert created.status_code == 201, created.text
    new_id = created.json()["access_profile"]["id"]
    assert profile(pair.a, new_id, session=name)["name"] == "in the session"
    assert named(pair.a, "in the session") == []  # the default state is another state
    edited = call(pair.a, "PUT", f"{CANONICAL}/1", {"description": "session edit"}, session=name)
    assert edited.status_code == 200
    assert profile(pair.b, 1, session=name)["description"] == "session edit"
    assert profile(pair.b, 1)["description"] != "session edit"

    deleted = requests.delete(f"{pair.a}/__mock/sessions/{name}", timeout=TIMEOUT)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(f"{pair.b}/__mock/sessions/{name}", timeout=TIMEOUT).status_code == 404
    listed = requests.get(f"{pair.b}/__mock/sessions", timeout=TIMEOUT).json()["sessions"]
    assert name not in [s["name"] for s in listed]
    # Its state went with it: the name used again starts from the fixtures.
    assert call(pair.b, "GET", f"{CANONICAL}/{new_id}", session=name).status_code == 404


# -- kill -9 ---------------------------------------------------------------------------------------


def kill_hard(served: Served) -> None:
    """``kill -9`` of an instance: the worker that serves, then the process that started it."""
    worker = served.serving_pid()
    for pid in dict.fromkeys((worker, served.process.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    served.process.wait(timeout=10)


def test_kill_9_of_one_instance_loses_nothing_it_acknowledged_and_the_other_keeps_serving(
    postgres_cluster: Cluster, postgresql: str
) -> None:
    url = postgres_cluster.url(dbname(postgresql))
    with started_together(instance(url, "a"), instance(url, "b")) as (a, b):
        created: dict[int, str] = {}  # id -> name, every create A acknowledged
        edited: dict[int, str] = {}  # id -> description, every edit A acknowledged
        read_statuses: list[int] = []
        stop = threading.Event()

        def write(worker: int) -> None:
            for n in range(10_000):
                name = f"k9 {worker}-{n}"
                try:
                    answer = call(a.url, "POST", CANONICAL, {"name": name}, timeout=5)
                    if answer.status_code != 201:
                        return
                    new_id = answer.json()["access_profile"]["id"]
                    created[new_id] = name
                    answer = call(a.url, "PUT", f"{CANONICAL}/{new_id}", {"description": f"{name} edited"}, timeout=5)
                    if answer.status_code != 200:
                        return
                    edited[new_id] = f"{name} edited"
                except requests.RequestException:  # A is gone
                    return

        def read() -> None:
            while not stop.is_set():
                read_statuses.append(call(b.url, "GET", f"{CANONICAL}?limit=5", timeout=5).status_code)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(3)] + [threading.Thread(target=read)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        kill_hard(a)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT)

        assert len(created) >= 5, "the writers did not get going before the kill"
        assert read_statuses and set(read_statuses) == {200}
        for profile_id, name in created.items():
            seen = profile(b.url, profile_id)
            assert seen["name"] == name
            if profile_id in edited:
                assert (seen["description"], seen["version"]) == (edited[profile_id], 2)
        after = call(b.url, "POST", CANONICAL, {"name": "after the kill"})
        assert after.status_code == 201, after.text
        assert profile(b.url, after.json()["access_profile"]["id"])["name"] == "after the kill"


# -- PostgreSQL stopped and started under load ------------------------------------------------------


@dataclass
class Sent:
    method: str
    description: str | None
    started: float
    ended: float
    status: int
    answer: requests.Response


def test_postgresql_stopped_under_load_gives_503s_then_both_instances_recover_by_themselves() -> None:
    cluster = start_cluster()  # its own: stopping the shared one would break this worker's other tests
    try:
        url = cluster.url("postgres")
        with started_together(instance(url, "a"), instance(url, "b")) as (a, b):
            first = profile(a.url, 4)
            sent: list[Sent] = []
            stop = threading.Event()

            def load(base: str, worker: int, writes: bool) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    description = f"outage {worker}-{n}" if writes else None
                    started = time.monotonic()
                    if writes:
                        answer = call(base, "PUT", f"{CANONICAL}/4", {"description": description})
                    else:
                        answer = call(base, "GET", f"{CANONICAL}/4")
                    sent.append(Sent("PUT" if writes else "GET", description, started, time.monotonic(), 0, answer))
                    sent[-1].status = answer.status_code
                    time.sleep(0.01)

            workers = [
                threading.Thread(target=load, args=(base, i, writes))
                for i, (base, writes) in enumerate([(a.url, True), (b.url, True), (a.url, False), (b.url, False)])
            ]
            for worker in workers:
                worker.start()
            time.sleep(0.8)
            stopping = time.monotonic()
            cluster.stop("fast")
            stopped = time.monotonic()
            time.sleep(2)
            restarting = time.monotonic()
            cluster.start()
            # Both recover by themselves: a write through each answers 200 again, without a restart.
            recovered: dict[str, float] = {}
            deadline = time.monotonic() + 20
            while len(recovered) < 2 and time.monotonic() < deadline:
                for base in (a.url, b.url):
                    if base not in recovered:
                        probe = call(base, "PUT", f"{CANONICAL}/5", {"description": f"back {uuid.uuid4().hex[:6]}"})
                        if probe.status_code == 200:
                            recovered[base] = time.monotonic() - restarting
                time.sleep(0.1)
            stop.set()
            for worker in workers:
                worker.join(timeout=TIMEOUT)
            assert len(recovered) == 2, f"an instance did not recover within 20 s of PostgreSQL's return: {recovered}"

            statuses = {s.status for s in sent}
            assert statuses <= {200, 503}, sorted(statuses)  # never a 500, never anything else
            assert all(is_unavailable(s.answer) for s in sent if s.status == 503)
            assert max(s.ended - s.started for s in sent) < 5, "a request hung while PostgreSQL was down"
            outage = [s for s in sent if s.method == "PUT" and stopped < s.started and s.ended < restarting]
            assert outage and {s.status for s in outage} == {503}  # nothing acknowledged while it was down
            assert any(s.status == 200 for s in sent if s.method == "PUT" and s.ended < stopping)

            # Nothing half-applied: the history holds every acknowledged write, and of the refused ones
            # at most those in flight when the server went away; profile and history agree.
            acknowledged = {s.description for s in sent if s.method == "PUT" and s.status == 200}
            in_flight = {s.description for s in sent if s.method == "PUT" and s.status == 503 and s.started < stopped}
            for base in (a.url, b.url):
                rows = versions(base, 4)
                later = [r for r in rows if r["version"] > first["version"]]
                applied = {r["description"] for r in later}
                assert acknowledged <= applied <= acknowledged | in_flight
                assert [r["version"] for r in later] == list(
                    range(first["version"] + 1, first["version"] + len(later) + 1)
                )
                assert profile(base, 4)["version"] == first["version"] + len(later)
    finally:
        cluster.close()


# -- a connection dropped in the middle of a write -------------------------------------------------


def test_a_connection_dropped_in_the_middle_of_a_write_changes_nothing(
    postgres_cluster: Cluster, postgresql: str
) -> None:
    name = dbname(postgresql)
    with Proxy(postgres_cluster.port) as proxy:
        # A reaches PostgreSQL through the relay; B directly, so it reads what the database holds.
        with started_together(instance(proxy.url(name), "a"), instance(postgres_cluster.url(name), "b")) as (a, b):
            before = profile(b.url, 6)
            listed = len(versions(b.url, 6))

            def unchanged() -> None:
                for base in (a.url, b.url):
                    seen = profile(base, 6)
                    assert (seen["version"], seen["description"]) == (before["version"], before["description"])
                    assert len(versions(base, 6)) == listed

            # Dropped when the write's data goes out; then once all of it is sent, just before its COMMIT.
            for then in ((), (b"COMMIT",)):
                marker = f"mid-write {uuid.uuid4().hex}"
                dropped = proxy.cut_on(marker.encode(), *then)
                answer = call(a.url, "PUT", f"{CANONICAL}/6", {"description": marker})
                assert dropped.wait(5), "the write never sent its data through the relay"
                assert is_unavailable(answer), answer.text
                unchanged()

            # A create dropped in the middle takes neither the name nor a profile.
            taken = f"mid-write create {uuid.uuid4().hex}"
            dropped = proxy.cut_on(taken.encode())
            assert is_unavailable(call(a.url, "POST", CANONICAL, {"name": taken}))
            assert dropped.wait(5)
            assert named(a.url, taken) == [] and named(b.url, taken) == []
            again = call(a.url, "POST", CANONICAL, {"name": taken})
            assert again.status_code == 201, again.text

            # The next write through A opens a new connection and lands as the next version, exactly once.
            after = call(a.url, "PUT", f"{CANONICAL}/6", {"description": "after the drops"})
            assert after.status_code == 200, after.text
            assert after.json()["access_profile"]["version"] == before["version"] + 1
            assert profile(b.url, 6)["version"] == before["version"] + 1
            assert len(versions(b.url, 6)) == listed + 1


# -- PostgreSQL unreachable at the start ---------------------------------------------------------------


def test_a_start_on_a_postgresql_that_cannot_be_reached_names_the_url_and_exits_2(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there once the probe is closed
    url = f"postgresql://mock:hunter2@127.0.0.1:{port}/mock"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--no-watch", "--state", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    shown = f"postgresql://mock:***@127.0.0.1:{port}/mock"
    assert lines[0].startswith(f"mockserver: error: the state store cannot be reached at {shown} ("), lines[0]
    assert "Connection refused" in lines[0] and lines[0].endswith(")")
    assert "saved" not in lines[0] and "changed" not in lines[0]  # nothing was being saved at the start
    assert "hunter2" not in result.stderr + result.stdout
    assert time.monotonic() - started < 30


# -- a server that hangs ------------------------------------------------------------------------------


def test_a_postgresql_that_hangs_gives_a_503_within_seconds_and_nothing_is_applied(
    postgres_cluster: Cluster, postgresql: str
) -> None:
    """Connections stay open and nothing answers: the requests waiting on them end with the 503 within the
    engine's deadlines (storage.postgresql), not whenever the server comes back; then A recovers by itself."""
    name = dbname(postgresql)
    with Proxy(postgres_cluster.port) as proxy:
        with started_together(instance(proxy.url(name), "a"), instance(postgres_cluster.url(name), "b")) as (a, b):
            before = profile(b.url, 8)
            assert call(a.url, "PUT", f"{CANONICAL}/8", {"description": "warm"}).status_code == 200
            proxy.stalled.set()  # every byte held both ways; no connection closed
            try:
                started = time.monotonic()
                answer = call(a.url, "PUT", f"{CANONICAL}/8", {"description": "during the hang"}, timeout=30)
                waited = time.monotonic() - started
                read = call(a.url, "GET", f"{CANONICAL}/8", timeout=30)
                read_waited = time.monotonic() - started - waited
            finally:
                proxy.stalled.clear()
            assert is_unavailable(answer), answer.text
            assert waited < 10, f"a write waited {waited:.1f} s on a hung server"
            assert is_unavailable(read), read.text
            assert read_waited < 10, f"a read waited {read_waited:.1f} s on a hung server"
            proxy.cut()  # whatever the relay held reaches nobody
            time.sleep(0.5)
            seen = profile(b.url, 8)
            assert seen["description"] == "warm" and seen["version"] == before["version"] + 1
            again = call(a.url, "PUT", f"{CANONICAL}/8", {"description": "after the hang"})
            assert again.status_code == 200 and again.json()["access_profile"]["version"] == before["version"] + 2


def test_the_relay_drops_a_connection_before_the_bytes_asked_for_reach_postgresql(
    postgresql: str, postgres_cluster: Cluster
) -> None:
    with psycopg.connect(postgresql, autocommit=True) as db:
        db.execute("CREATE TABLE kept (v text)")
    with Proxy(postgres_cluster.port) as proxy:
        connection = psycopg.connect(proxy.conninfo(dbname(postgresql)))
        dropped = proxy.cut_on(b"first", b"COMMIT")
        connection.execute("INSERT INTO kept VALUES ('first')")
        with pytest.raises(psycopg.OperationalError):
            connection.commit()
        assert dropped.wait(5)
        connection.close()
        others = [psycopg.connect(proxy.conninfo(dbname(postgresql))) for _ in range(2)]
        assert proxy.cut() == 2
        for other in others:
            with pytest.raises(psycopg.OperationalError):
                other.execute("SELECT 1")
            other.close()
    with psycopg.connect(postgresql) as db:
        assert db.execute("SELECT count(*) FROM kept").fetchone() == (0,)


# -- --workers 2 on one SQLite file ---------------------------------------------------------------


def test_two_workers_on_one_state_file_lose_no_update_keep_names_unique_and_ids_apart(tmp_path: Path) -> None:
    # tests/test_workers.py shows read-your-writes between the workers; here, their concurrent writes.
    # Every request opens its own connection, so the kernel hands each to either worker.
    with serve(
        "--no-watch", "--quiet", "--state", str(tmp_path / "s.sqlite"), "--workers", "2", "--instance", "w"
    ) as served:
        base = served.url
        before = profile(base, 7)
        listed = len(versions(base, 7))
        texts = [f"workers {i} {uuid.uuid4().hex[:6]}" for i in range(24)]
        answers = at_once(24, lambda i: call(base, "PUT", f"{CANONICAL}/7", {"description": texts[i]}))
        assert [a.status_code for a in answers] == [200] * 24, [a.text for a in answers if a.status_code != 200]
        assert sorted(a.json()["access_profile"]["version"] for a in answers) == list(
            range(before["version"] + 1, before["version"] + 25)
        )
        for _ in range(4):  # whichever worker answers
            assert profile(base, 7)["version"] == before["version"] + 24
            rows = versions(base, 7)
            assert len(rows) == listed + 24 and {r["description"] for r in rows[listed:]} == set(texts)

        for attempt in range(2):
            name = f"workers one name {attempt} {uuid.uuid4().hex[:6]}"

            def create(i: int, name: str = name) -> requests.Response:
                return call(base, "POST", CANONICAL, {"name": name})

            assert sorted(a.status_code for a in at_once(10, create)) == [201] + [409] * 9
            assert len(named(base, name)) == 1

        names = [f"workers distinct {i} {uuid.uuid4().hex[:6]}" for i in range(16)]
        made = at_once(16, lambda i: call(base, "POST", CANONICAL, {"name": names[i]}))
        assert [a.status_code for a in made] == [201] * 16
        ids = [a.json()["access_profile"]["id"] for a in made]
        assert {i: profile(base, i)["name"] for i in ids} == dict(zip(ids, names, strict=True))

        # The writes were spread over both processes (the shared journal names the worker of each).
        def writers() -> set[str]:
            journal = requests.get(f"{base}/__mock/journal?operation_id=updateAccessProfile", timeout=TIMEOUT).json()
            return {entry["instance"] for entry in journal["entries"]}

        deadline = time.monotonic() + 5
        while writers() != {"w-1", "w-2"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writers() == {"w-1", "w-2"}
