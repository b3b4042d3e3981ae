"""The tests' own PostgreSQL (tests/postgres.py) is a real server: it keeps what is committed, isolates what
is not, runs as a user other than root, and goes away with the tests, even when they are killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from postgres import Cluster, start_cluster

pytestmark = pytest.mark.slow


def test_a_committed_row_is_seen_by_another_connection_and_an_uncommitted_one_is_not(postgresql: str) -> None:
    with psycopg.connect(postgresql) as writer, psycopg.connect(postgresql) as reader:
        writer.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, body jsonb NOT NULL)")
        writer.execute("INSERT INTO notes (body) VALUES (%s::jsonb)", ['{"text": "first"}'])
        writer.commit()
        writer.execute("INSERT INTO notes (body) VALUES (%s::jsonb)", ['{"text": "not yet"}'])  # left open

        rows = reader.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
        assert rows == [(1, {"text": "first"})]

        writer.commit()
        reader.rollback()  # a new snapshot: the second row is committed now
        assert reader.execute("SELECT count(*) FROM notes").fetchone() == (2,)


def test_it_is_postgresql_run_by_a_user_other_than_root_in_its_own_folder(postgres_cluster: Cluster) -> None:
    with psycopg.connect(postgres_cluster.conninfo()) as db:
        version = db.execute("SELECT version()").fetchone()
        data_directory = db.execute("SHOW data_directory").fetchone()
        listen = db.execute("SHOW listen_addresses").fetchone()
    assert version is not None and version[0].startswith("PostgreSQL ")
    assert data_directory == (str(postgres_cluster.data),)
    assert listen == ("127.0.0.1",)
    pid = int((postgres_cluster.data / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0


def test_a_database_of_one_test_is_not_another_tests(postgresql: str, postgres_cluster: Cluster) -> None:
    with psycopg.connect(postgresql) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        name = db.info.dbname
    assert name.startswith("test_") and name in postgresql


def _refused(port: int) -> bool:
    try:
        psycopg.connect(f"host=127.0.0.1 port={port} user=mock dbname=postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return True
    return False


def test_a_stopped_server_refuses_connections_and_keeps_its_rows_when_started_again() -> None:
    cluster = start_cluster()  # its own: stopping the shared one would fail other tests of this worker
    try:
        with psycopg.connect(cluster.conninfo(), autocommit=True) as db:
            db.execute("CREATE TABLE kept (n integer)")
            db.execute("INSERT INTO kept VALUES (42)")
        cluster.stop()
        assert _refused(cluster.port)
        cluster.start()
        with psycopg.connect(cluster.conninfo()) as db:
            assert db.execute("SELECT n FROM kept").fetchall() == [(42,)]
    finally:
        cluster.close()


def test_close_stops_the_server_and_removes_its_folder() -> None:
    cluster = start_cluster()
    assert not _refused(cluster.port)
    cluster.close()
    assert _refused(cluster.port)
    assert not cluster.folder.exists()


def test_a_killed_test_process_takes_its_server_with_it(tmp_path: Path) -> None:
    here = Path(__file__).parent
    script = f"import sys; sys.path.insert(0, {str(here)!r}); from postgres import start_cluster; "
    script += "c = start_cluster(); print(c.port, c.folder, flush=True); import time; time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port_text, folder_text = child.stdout.readline().split()
        port, folder = int(port_text), Path(folder_text)
        assert not _refused(port)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 30
        while (folder.exists() or not _refused(port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _refused(port)
        assert not folder.exists()
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
