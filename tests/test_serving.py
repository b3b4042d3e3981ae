"""The server under `mockserver serve`: which one is the default, and what only a real server can show.

The features every server keeps (Prefer, CORS, sessions, the inspector, hot reload, the state file's
owner, Ctrl-C, SIGTERM and kill -9) are tested through ``serving.serve``, that is on the default
server, in test_cli, test_granian, test_state_file, test_sessions_http, test_inspector,
test_persistence and test_logs. Here, on the default server and on waitress beside it: which server
answers, Prefer and CORS, delayed answers waiting at once, both faults read off the socket, and
``Prefer: fault=empty`` as curl, requests, httpx and a browser's fetch see it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import CANONICAL
from serving import Served, serve

from mockserver.cli import _on_granian, main
from mockserver.server import forked
from mockserver.settings import ServerKind, Settings, SettingsError

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer serving"}
ONE = f"{CANONICAL}/1"
DEFAULT = "granian" if forked.available() else "waitress"
SERVERS = pytest.mark.parametrize("server", ["default", "waitress"], ids=[f"default-{DEFAULT}", "waitress"])


def on(server: str, *args: str) -> AbstractContextManager[Served]:
    """``mockserver serve`` as a user starts it (``default``), or on the named server."""
    chosen = () if server == "default" else ("--server", server)
    return serve("--no-watch", *chosen, *args)


# -- which server ------------------------------------------------------------------------------------


def test_the_default_is_auto_granian_where_it_runs_waitress_elsewhere() -> None:
    assert Settings().server is ServerKind.AUTO
    assert _on_granian(ServerKind.AUTO, available=True) is True
    assert _on_granian(ServerKind.AUTO, available=False) is False  # macOS, Windows: waitress, no error
    assert _on_granian(ServerKind.WAITRESS, available=True) is False
    assert _on_granian(ServerKind.GRANIAN, available=True) is True
    with pytest.raises(SettingsError, match="use --server waitress"):
        _on_granian(ServerKind.GRANIAN, available=False)


@SERVERS
def test_the_server_that_answers_is_the_one_chosen(server: str) -> None:
    with on(server) as served:
        answer = requests.get(f"{served.url}{ONE}", headers=AUTH, timeout=5)
        assert answer.status_code == 200
        expected = DEFAULT if server == "default" else server
        assert answer.headers["Server"].lower() == ("granian" if expected == "granian" else "mockserver")
        assert served.stop(signal.SIGINT) == 0
    assert "mockserver stopped" in "".join(served.lines)


@pytest.mark.skipif(not forked.available(), reason="the default is granian only where processes fork (Linux)")
def test_kill_9_of_the_default_server_frees_the_port_and_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with serve("--state", str(path)) as served:
        port = urlsplit(served.url).port
        assert port is not None
        assert requests.post(f"{served.url}{CANONICAL}", json={"name": "Kept"}, headers=AUTH, timeout=5).ok
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:  # the worker dies with its parent (parent-death signal); then the port is free
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, f"port {port} still taken 5 s after kill -9"
            time.sleep(0.05)
    with serve("--port", str(port), "--state", str(path)) as again:  # the same port, the same file
        names = [
            p["name"] for p in requests.get(f"{again.url}{CANONICAL}?limit=100", headers=AUTH).json()["access_profiles"]
        ]
        assert "Kept" in names


@SERVERS
def test_prefer_and_cors_on_each_server(server: str) -> None:
    with on(server) as served:
        url = f"{served.url}{ONE}"
        chosen = requests.get(url, headers={**AUTH, "Prefer": "code=404"}, timeout=5)
        assert chosen.status_code == 404 and chosen.json()["error"]["type"] == "not_found"
        assert requests.get(f"{url}?__code=401", headers=AUTH, timeout=5).status_code == 401
        origin = {"Origin": "http://localhost:5173"}
        preflight = requests.options(
            url, headers={**origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "Prefer"}
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        answer = requests.get(url, headers={**AUTH, **origin}, timeout=5)
        assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"


@SERVERS
def test_eight_delayed_answers_wait_at_the_same_time(server: str) -> None:
    """`--threads` (8) answers can wait out a delay at once: a page's parallel requests are not queued."""
    with on(server) as served:
        url = f"{served.url}{ONE}"
        requests.get(url, headers=AUTH, timeout=5)  # warm
        statuses: list[int] = []

        def delayed() -> None:
            statuses.append(requests.get(url, headers={**AUTH, "Prefer": "delay=500"}, timeout=10).status_code)

        workers = [threading.Thread(target=delayed) for _ in range(8)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        took = time.monotonic() - started
        assert statuses == [200] * 8
        assert 0.5 <= took < 1.5, took  # one after another would take 4 s


# -- Prefer: fault=empty: nothing at all is sent --------------------------------------------------------


def _raw(url: str, *requests_: bytes) -> list[bytes]:
    """Send each request on one connection, reading each answer to its end; what each brought."""
    parts = urlsplit(url)
    received: list[bytes] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as connection:
        for request in requests_:
            connection.sendall(request)
            data = b""
            try:
                while not data.endswith(b"}") or b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            received.append(data)
    return received


@SERVERS
def test_fault_empty_sends_not_a_single_byte(server: str) -> None:
    plain = f"GET {ONE} HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer raw\r\n\r\n".encode()
    faulty = f"GET {ONE} HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer raw\r\nPrefer: fault=empty\r\n\r\n".encode()
    with on(server) as served:
        for _ in range(5):  # a race would show in some of them
            first, second = _raw(served.url, plain, faulty)
            assert first.startswith(b"HTTP/1.1 200 ")
            assert second == b""  # the connection closed, and this answer had not one byte
        query = _raw(
            served.url, f"GET {ONE}?__fault=empty HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer r\r\n\r\n".encode()
        )
        assert query == [b""]
        assert requests.get(f"{served.url}{ONE}", headers=AUTH, timeout=5).status_code == 200  # still serving


@SERVERS
def test_fault_truncate_sends_the_head_and_half_the_body(server: str) -> None:
    faulty = f"GET {ONE}?__fault=truncate HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer raw\r\n\r\n".encode()
    with on(server) as served:
        whole = requests.get(f"{served.url}{ONE}", headers=AUTH, timeout=5).content
        for _ in range(5):
            (cut,) = _raw(served.url, faulty)
            head, _, body = cut.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert f"content-length: {len(whole)}".encode() in head.lower()
            assert body == whole[: len(whole) // 2]
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # requests: the body broke off
            requests.get(f"{served.url}{ONE}", headers={**AUTH, "Prefer": "fault=truncate"}, timeout=5)


@SERVERS
def test_fault_empty_is_a_connection_error_in_curl_requests_and_httpx(server: str) -> None:
    import httpx

    with on(server) as served:
        url = f"{served.url}{ONE}"
        fault = {**AUTH, "Prefer": "fault=empty"}
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Prefer: fault=empty",
                "-H",
                "Authorization: Bearer curl",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert curl.returncode == 52, curl.stderr  # curl: (52) Empty reply from server
        assert curl.stdout == "000"  # no status
        with pytest.raises(requests.ConnectionError):
            requests.get(url, headers=fault, timeout=5)
        with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
            httpx.get(url, headers=fault, timeout=5)
        with httpx.Client(timeout=5) as client:  # on a kept-alive connection too (httpx retries none)
            assert client.get(url, headers=AUTH).status_code == 200
            with pytest.raises(httpx.TransportError):
                client.get(url, headers=fault)


@SERVERS
def test_fault_empty_rejects_a_browser_fetch_without_a_status(server: str) -> None:
    from playwright.sync_api import sync_playwright
    from test_docs_page import CHROMIUM, CHROMIUM_ARGS

    script = """async ([url, prefer]) => {
        const headers = {Authorization: "Bearer browser"};
        if (prefer) headers.Prefer = prefer;
        try {
            const answer = await fetch(url, {headers});
            return {status: answer.status, body: await answer.text()};
        } catch (error) {
            return {error: error.name + ": " + error.message};
        }
    }"""
    with on(server) as served, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{served.url}/openapi.json")  # same origin: the fetch below needs no CORS
            url = f"{served.url}{ONE}"
            assert page.evaluate(script, [url, None])["status"] == 200
            for prefer in ("fault=empty", None):
                outcome = page.evaluate(script, [url if prefer else f"{url}?__fault=empty", prefer])
                assert outcome == {"error": "TypeError: Failed to fetch"}
        finally:
            browser.close()


def test_a_start_on_granian_where_it_cannot_run_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As on macOS or Windows: forked.available() is what tells (and what the auto default follows)."""
    monkeypatch.setattr(forked, "available", lambda: False)
    assert main(["serve", "--port", "0", "--server", "granian"]) == 2
    assert "use --server waitress" in capsys.readouterr().err
