"""Shared fixtures: apps built through the factory, clients that authenticate by default."""

from __future__ import annotations

import base64
import json
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from postgres import Cluster, start_cluster
from werkzeug.test import TestResponse

from mockserver import Mock, Settings, Spec, State, create_app
from mockserver.domain.fixtures import load_seed
from mockserver.resources import bundled_api_keys, bundled_fixtures, bundled_spec

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bf-mgmt-ci-admin-7d1e4b"  # fixtures/api-keys.json
VIEWER_TOKEN = "bf-mgmt-viewer-2c9a51"
PROVISIONER_TOKEN = "bf-mgmt-provisioner-8f03aa"
CANONICAL = "/api/governance/access-profiles"
LEGACY = "/api/access-profiles"
# Both path families serve the same operations; HTTP tests run on each.
PREFIXES = pytest.mark.parametrize("prefix", [CANONICAL, LEGACY], ids=["canonical", "legacy"])
# What the bundled fixtures hold, as /__mock/state/counts reports it.
FIXTURE_COUNTS = {
    "profiles": 10,
    "versions": 10,
    "audit_logs": 10,
    "roles": 7,
    "role_attachments": 7,
    "users": 9,
    "user_copies": 4,
    "virtual_keys": 7,
}
FIXED_NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    # Tests stop servers and contract runs with SIGINT, as Ctrl-C would. A shell that puts a job in
    # the background starts it with SIGINT ignored, and every child inherits that; give the children
    # Python's Ctrl-C back (a handler set here becomes the default again in a child after exec).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--api-url",
        help="run tests/test_contract_suite.py against this deployment instead of the in-process mock; "
        "credentials come from MOCKSERVER_CONTRACT_TOKEN or MOCKSERVER_CONTRACT_BASIC",
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeClock:
    """A clock that tests move by hand."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Api:
    """A Flask test client that sends credentials and JSON by default."""

    def __init__(self, app: Flask, authorization: str | None = "Bearer dev-token") -> None:
        self.app = app
        self.client = app.test_client()
        self.authorization = authorization

    @property
    def mock(self) -> Mock:
        return self.app.extensions["mockserver"]  # type: ignore[no-any-return]

    def request(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}))
        if self.authorization is not None:
            headers.setdefault("Authorization", self.authorization)
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            kwargs.setdefault("content_type", "application/json")
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> TestResponse:
        return self.request("POST", path, json_body, **kw)

    def put(self, path: str, json_body: Any = None, **kw: Any) -> TestResponse:
        return self.request("PUT", path, json_body, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.request("DELETE", path, **kw)

    def profile(self, profile_id: int) -> dict[str, Any]:
        """The stored profile, read through the API."""
        response = self.get(f"{CANONICAL}/{profile_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json["access_profile"]  # type: ignore[index,no-any-return]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec.load(bundled_spec())


@pytest.fixture
def seed(spec: Spec, clock: FakeClock) -> State:
    """The bundled fixtures as a fresh state (tests may add role attachments and user copies)."""
    return load_seed(bundled_fixtures(), spec, clock)


@pytest.fixture
def make_app(clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    """Build apps through the factory; after the test, none of them may have broken the contract."""
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        app = create_app(Settings(**settings))
        app.extensions["mockserver"].store.clock = clock
        apps.append(app)
        return app

    yield make
    for app in apps:
        violations = app.extensions["mockserver"].violations
        assert not violations, "the mock broke its contract:\n" + "\n".join(map(str, violations))


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The default mock: bundled spec and fixtures, permissive auth, strict responses."""
    return make_app()


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


@pytest.fixture
def strict_api(make_app: Callable[..., Flask]) -> Api:
    """A mock with the example API-keys file loaded; calls as the full-access CI key."""
    return Api(make_app(api_keys=bundled_api_keys()), authorization=f"Bearer {ADMIN_TOKEN}")


def error_of(response: TestResponse) -> dict[str, Any]:
    """The ``error`` object of a BifrostError answer, after checking the envelope around it."""
    body = response.json
    assert response.mimetype == "application/json", response.get_data(as_text=True)
    assert body is not None
    assert body["is_bifrost_error"] is False
    assert body["status_code"] == response.status_code
    assert body["extra_fields"] == {}
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A real PostgreSQL server of this test process (each xdist worker has its own), stopped at the end."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def postgresql(postgres_cluster: Cluster) -> Iterator[str]:
    """A new, empty database on the tests' PostgreSQL, as a libpq connection string; dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_cluster.conninfo(name)
    with psycopg.connect(postgres_cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
