"""pytest plugin: the mock as fixtures for other projects' test suites.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an environment
where mockserver is installed. It therefore imports nothing heavy here; the app, Flask and the
validators are imported when a test first asks for the ``mockserver`` fixture.

- ``mockserver``: per test, a fresh API (state reset to the fixtures, journal cleared) with
  ``.url`` (a live server for the session, started on first use, on a free port) and ``.client``
  (an in-process client, no socket). After the test, anything that went wrong while serving it
  fails the test: an answer that broke the contract, an error inside the mock, or a request that
  the spec does not allow.
- ``mockserver_settings``: the ``Settings`` used; override it in a conftest.py or test module.
- ``@pytest.mark.mockserver(...)``: per test: ``fixtures``, ``api_keys``, ``spec``, ``strict``,
  ``validation`` (any ``Settings`` field), ``empty=True`` (start with no profiles), ``token``
  (what the in-process client sends), ``allow_refused=True`` (requests the spec refuses are expected).
- ``mockserver_sessions = true`` (ini): one live server for the whole run, and each pytest-xdist
  worker (or the one process) works in a session of its own on it, instead of a server per worker.
  ``.url`` is then the session's base URL (``/__session/<worker>``), ``.client`` sends its requests
  there, and the journal and violations are read over HTTP. Tests whose settings differ from the
  defaults keep a server of their worker's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

    from mockserver.server.context import Mock
    from mockserver.server.journal import Entry
    from mockserver.server.serving import BackgroundServer
    from mockserver.settings import Settings

DEFAULT_TOKEN = "mockserver-test"
SESSIONS_INI = "mockserver_sessions"
_HANDLE = pytest.StashKey["_Checked"]()
_SHARED = pytest.StashKey["BackgroundServer"]()
_MARK_OPTIONS = {"empty", "token", "allow_refused"}


class MockServerError(AssertionError):
    """Something went wrong while the mock served a test; the message lists every problem."""


class _Checked:
    """What a test's handle checks after the test, from its journal and violations."""

    allow_refused: bool

    def calls(self, operation_id: str | None = None, **filters: Any) -> list[Entry]:
        raise NotImplementedError

    def _violations(self) -> list[str]:
        raise NotImplementedError

    def assert_called_once_with(self, operation_id: str, body: Any = None) -> Entry:
        """The one call of ``operation_id``; with ``body``, it must have sent exactly that JSON."""
        calls = self.calls(operation_id)
        if len(calls) != 1:
            raise AssertionError(f"expected one call of {operation_id}, got {len(calls)}:\n{self._listing()}")
        if body is not None and calls[0].body != body:
            raise AssertionError(f"{operation_id} was called with body {calls[0].body!r}, expected {body!r}")
        return calls[0]

    def problems(self) -> list[str]:
        """Everything that went wrong while serving this test."""
        found = [f"the mock broke its contract or failed: {v}" for v in self._violations()]
        if not self.allow_refused:
            found += [f"the spec does not allow this request: {e}" for e in self.calls(refused=True)]
        return found

    def check(self) -> None:
        """Raise ``MockServerError`` if anything went wrong while serving this test."""
        __tracebackhide__ = True
        problems = self.problems()
        if problems:
            hint = ""
            if not self.allow_refused and any("does not allow" in p for p in problems):
                hint = "\n(if the test sends such requests on purpose: @pytest.mark.mockserver(allow_refused=True))"
            lines = "\n".join(f"- {p}" for p in problems)
            raise MockServerError(f"mockserver: {len(problems)} problem(s) while serving this test:\n{lines}{hint}")

    def _listing(self) -> str:
        return "\n".join(f"  {entry}" for entry in self.calls()) or "  (no requests)"


class _Pool:
    """One app per distinct settings for the whole session, and its live server once asked for."""

    def __init__(self) -> None:
        self._apps: dict[Settings, Flask] = {}
        self._servers: dict[Settings, BackgroundServer] = {}

    def app(self, settings: Settings) -> Flask:
        if settings not in self._apps:
            from mockserver.server.app import create_app

            self._apps[settings] = create_app(settings)
        return self._apps[settings]

    def url(self, settings: Settings) -> str:
        if settings not in self._servers:
            from mockserver.server.serving import BackgroundServer

            self._servers[settings] = BackgroundServer(self.app(settings), port=0).start()
        return self._servers[settings].url

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


class MockServer(_Checked):
    """What a test gets from the ``mockserver`` fixture."""

    def __init__(self, pool: _Pool, settings: Settings, token: str, allow_refused: bool) -> None:
        self._pool = pool
        self.settings = settings
        self.app = pool.app(settings)
        self.allow_refused = allow_refused
        self.client: FlaskClient = self.app.test_client()
        self.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    @property
    def mock(self) -> Mock:
        return self.app.extensions["mockserver"]  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        """Base URL of the live server (shared by the session, reset for every test)."""
        return self._pool.url(self.settings)

    def reset(self, empty: bool = False) -> None:
        """Back to the fixtures (or to no profiles at all), with an empty journal."""
        from mockserver.domain.store import State

        self.mock.store.reset()
        if empty:
            self.mock.store.restore(State())
        self.mock.journal.clear()
        self.mock.violations.clear()

    def calls(self, operation_id: str | None = None, **filters: Any) -> list[Entry]:
        """Journal entries of this test, oldest first; ``operation_id`` matches either path family."""
        return self.mock.journal.entries(operation_id, **filters)

    def _violations(self) -> list[str]:
        return [str(v) for v in self.mock.violations]


class SharedMockServer(_Checked):
    """What a test gets from the ``mockserver`` fixture with ``mockserver_sessions``: its worker's
    session on the run's one live server, reset for every test."""

    def __init__(self, server_url: str, session: str, settings: Settings, token: str, allow_refused: bool) -> None:
        from werkzeug.test import Client

        self.settings = settings
        self.session = session
        self.allow_refused = allow_refused
        self.url = f"{server_url}/__session/{session}"
        """Base URL of this worker's session: every path under it works in the session."""
        self.client = Client(_Forward(self.url, f"Bearer {token}"))
        """A client with the Flask test client's interface; its requests go to the session over HTTP."""

    @property
    def mock(self) -> Mock:
        raise AttributeError(
            "with mockserver_sessions the mock runs in another process: use .url, .client, .calls() and .reset()"
        )

    def reset(self, empty: bool = False) -> None:
        """Back to the fixtures (or to no profiles at all), with an empty journal."""
        self._control("POST", "/__mock/reset?empty=true" if empty else "/__mock/reset")
        self._control("DELETE", "/__mock/journal")
        self._control("DELETE", "/__mock/violations")

    def calls(self, operation_id: str | None = None, **filters: Any) -> list[Entry]:
        """Journal entries of this test, oldest first; ``operation_id`` matches either path family."""
        from mockserver.server.journal import Entry, Journal

        journal = Journal()
        for entry in self._control("GET", "/__mock/journal")["entries"]:
            journal.record(Entry.from_dict(entry))
        return journal.entries(operation_id, **filters)

    def _violations(self) -> list[str]:
        from mockserver.server.context import Violation

        found = self._control("GET", "/__mock/violations")["violations"]
        return [str(Violation(**{**v, "problems": tuple(v["problems"])})) for v in found]

    def _control(self, method: str, path: str) -> Any:
        response = self.client.open(path, method=method)
        if response.status_code >= 300:
            raise MockServerError(
                f"mockserver: {method} {self.url}{path} answered {response.status_code}: {response.text}"
            )
        return response.json


class _Forward:
    """A WSGI app that sends every request on to a live server and answers what it answered."""

    _HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}

    def __init__(self, base_url: str, authorization: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self.host, self.port, self.root = parts.hostname or "127.0.0.1", parts.port, parts.path
        self.authorization = authorization

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        import http.client
        from urllib.parse import quote

        from werkzeug.datastructures import EnvironHeaders

        headers = {k: v for k, v in EnvironHeaders(environ).items() if k.lower() not in self._HOP}
        if "Authorization" not in headers:
            headers["Authorization"] = self.authorization
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        target = environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/").encode("latin-1"))
        if "REQUEST_URI" not in environ and environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(environ["REQUEST_METHOD"], self.root + target, body, headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in self._HOP]
        start_response(f"{answer.status} {answer.reason}", kept)
        return [data]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        SESSIONS_INI,
        "mockserver: one live server for the run, each pytest-xdist worker in its own session on it",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mockserver(**options): settings of the mockserver fixture for this test (Settings fields, "
        "empty, token, allow_refused)",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: with ``mockserver_sessions``, every worker gets the one server."""
    config = node.config
    if not config.getini(SESSIONS_INI):
        return
    if _SHARED not in config.stash:
        from mockserver.server.app import create_app
        from mockserver.server.serving import BackgroundServer
        from mockserver.settings import Settings

        config.stash[_SHARED] = BackgroundServer(create_app(Settings()), port=0).start()
    node.workerinput["mockserver_url"] = config.stash[_SHARED].url


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SHARED, None)
    if server is not None:
        server.stop()
        del config.stash[_SHARED]


@pytest.fixture(scope="session")
def mockserver_pool() -> Iterator[_Pool]:
    """Apps and live servers shared by the session, one per distinct settings."""
    pool = _Pool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def mockserver_shared(request: pytest.FixtureRequest, mockserver_pool: _Pool) -> tuple[str, str] | None:
    """With ``mockserver_sessions``: (the run's live server, this worker's session name); else None."""
    import os

    from mockserver.settings import Settings

    config = request.config
    if not config.getini(SESSIONS_INI):
        return None
    worker = getattr(config, "workerinput", None)
    if worker is not None and "mockserver_url" in worker:
        return worker["mockserver_url"], worker["workerid"]
    # One process (no xdist): its own live server, used the same way.
    return mockserver_pool.url(Settings()), os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture
def mockserver_settings() -> Settings:
    """The settings of the ``mockserver`` fixture. Override this fixture to change them."""
    from mockserver.settings import Settings

    return Settings()


@pytest.fixture
def mockserver(
    request: pytest.FixtureRequest,
    mockserver_pool: _Pool,
    mockserver_settings: Settings,
    mockserver_shared: tuple[str, str] | None,
) -> Iterator[MockServer | SharedMockServer]:
    """A fresh mock for this test: ``.url`` (live server), ``.client`` (in-process), ``.calls()``."""
    options: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("mockserver"))):  # closest marker wins
        options.update(mark.kwargs)
    fields = {f.name for f in dataclasses.fields(mockserver_settings)}
    unknown = set(options) - fields - _MARK_OPTIONS
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.mockserver: unknown option(s) {', '.join(sorted(unknown))}")
    settings = dataclasses.replace(mockserver_settings, **{k: v for k, v in options.items() if k in fields})
    token = options.get("token", DEFAULT_TOKEN)
    allow_refused = bool(options.get("allow_refused", False))
    handle: MockServer | SharedMockServer
    if mockserver_shared is not None and settings == type(settings)():
        handle = SharedMockServer(*mockserver_shared, settings, token=token, allow_refused=allow_refused)
    else:  # other settings than the shared server's: a server of this worker's own, as without sessions
        handle = MockServer(mockserver_pool, settings, token=token, allow_refused=allow_refused)
    handle.reset(empty=bool(options.get("empty", False)))
    request.node.stash[_HANDLE] = handle
    yield handle
    del request.node.stash[_HANDLE]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail the test itself (not its teardown) when the mock saw a problem while serving it."""
    __tracebackhide__ = True
    result = yield
    handle = item.stash.get(_HANDLE, None)
    if handle is not None:
        handle.check()
    return result
