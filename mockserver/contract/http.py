"""How a contract run reaches the API outside Schemathesis's own requests, and the guard on all of them.

``RequestsHttp`` talks to a deployment over the network; ``WsgiHttp`` calls an in-process app (the
pytest suite). ``guarded`` puts ``safety.Guard`` in front of every request the process
sends with ``requests``: Schemathesis's, its checks' probes and the run's own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from mockserver.contract.safety import Guard

# The commands that talk to a deployment read their URL and credentials from these variables too.
ENV_PREFIX = "MOCKSERVER_CONTRACT_"


@dataclass(frozen=True)
class Answer:
    """A response as the run's own code needs it."""

    status: int
    body: Any  # parsed JSON, or None when the body is not JSON
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A response header, whatever the case of its name."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    def profile(self) -> dict[str, Any] | None:
        """The ``access_profile`` object of the body, if there is one."""
        found = self.body.get("access_profile") if isinstance(self.body, dict) else None
        return found if isinstance(found, dict) else None

    def message(self) -> Any:
        """The ``error.message`` of the body as it is there, or None when the body has none."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("message")
        return None

    def describe(self) -> str:
        """``HTTP 400: <message>`` for messages to people."""
        return f"HTTP {self.status}: {self.message() or self.text[:300] or '(empty body)'}"


class Unreachable(Exception):
    """The API did not answer at all."""


class Http(Protocol):
    def request(
        self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Answer: ...


def target_from(
    options: Mapping[str, Any], env: Mapping[str, str], error: type[Exception] = ValueError
) -> tuple[str, str | None]:
    """The deployment's URL and Authorization header from ``--base-url``, ``--token`` and ``--basic``,
    each of which may come from ``MOCKSERVER_CONTRACT_*`` instead; a missing URL or bad credentials
    raise ``error``. Shared by the commands that talk to a deployment (contract, record, diff)."""
    base_url = options.get("base_url") or env.get(ENV_PREFIX + "BASE_URL")
    if not base_url:
        raise error(f"--base-url is required (or set {ENV_PREFIX}BASE_URL)")
    token = options.get("token") or env.get(ENV_PREFIX + "TOKEN")
    basic = options.get("basic") or env.get(ENV_PREFIX + "BASIC")
    if token and basic:
        raise error("give a bearer token or Basic credentials, not both")
    if basic and ":" not in basic:
        raise error("Basic credentials are written user:password")
    return base_url, authorization_header(token, basic)


def authorization_header(token: str | None = None, basic: str | None = None) -> str | None:
    """The ``Authorization`` value for a bearer token or ``user:password``."""
    if token:
        return f"Bearer {token}"
    if basic:
        return "Basic " + base64.b64encode(basic.encode()).decode()
    return None


class RequestsHttp:
    """Requests to a deployment at ``base_url``, with the run's credentials."""

    def __init__(self, base_url: str, authorization: str | None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        if authorization:
            self._session.headers["Authorization"] = authorization

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None) -> Answer:
        url = self.base_url + path
        try:
            response = self._session.request(
                method, url, json=body, params=dict(query or {}), timeout=self.timeout, allow_redirects=False
            )
        except UnsafeRequest:
            raise
        except requests.RequestException as exc:
            raise Unreachable(f"{method} {url}: {exc}") from exc
        return Answer(response.status_code, _json(response.content), response.text, dict(response.headers))

    def close(self) -> None:
        self._session.close()


class WsgiHttp:
    """Requests to an in-process WSGI app (the mock in the pytest suite)."""

    def __init__(self, app: Any, authorization: str | None) -> None:
        from werkzeug.test import Client

        self._client = Client(app)
        self._headers = {"Authorization": authorization} if authorization else {}

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None) -> Answer:
        response = self._client.open(
            path,
            method=method,
            headers=self._headers,
            query_string=dict(query or {}),
            data=None if body is None else json.dumps(body),
            content_type="application/json" if body is not None else None,
        )
        data = response.get_data()
        return Answer(response.status_code, _json(data), data.decode("utf-8", "replace"), dict(response.headers))


class UnsafeRequest(requests.RequestException):
    """The guard refused to send a request; a defect of the run, never of the API."""


@contextmanager
def guarded(guard: Guard, on_refusal: Callable[[str], None]) -> Iterator[None]:
    """Run the guard on every request this process sends with ``requests`` while the block runs."""
    original = HTTPAdapter.send

    def send(adapter: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        reason = guard.refusal(request.method or "GET", request.url or "", request.body)
        if reason is not None:
            on_refusal(reason)
            raise UnsafeRequest(f"mockserver contract refused to send {reason}", request=request)
        return original(adapter, request, *args, **kwargs)

    HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except (ValueError, RecursionError):
        return None
