"""``mockserver proxy``: a served mock (or a deliberately broken one) is the upstream; the proxy runs in-process.

The proxy forwards every request unchanged, returns the upstream's answer unchanged, and flags
what breaks the spec: ``X-Mockserver-Violations``, ``/__mock/violations``, the journal, the log.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from broken_variants import ADMIN_TOKEN, BY_NAME
from conftest import CANONICAL, LEGACY
from flask import Flask
from flask.testing import FlaskClient
from serving import run_mockserver, serve_command
from test_http_seed import seed_example
from werkzeug.test import TestResponse

from mockserver import BackgroundServer, Settings, create_app
from mockserver.resources import bundled_spec
from mockserver.server.proxy import MESSAGES_HEADER, VIOLATIONS_HEADER, ProxyOptions, create_proxy_app

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Flask]]:
    """A clean mock on a loopback port, shared by the module and reset before each test that uses it."""
    app = create_app(Settings())
    with BackgroundServer(app) as server:
        yield server.url, app


@pytest.fixture
def upstream(served: tuple[str, Flask]) -> tuple[str, Flask]:
    url, app = served
    mock = app.extensions["mockserver"]
    mock.store.reset()
    mock.journal.clear()
    mock.violations.clear()
    return url, app


def proxy_client(url: str, **options: Any) -> FlaskClient:
    return create_proxy_app(Settings(), ProxyOptions(upstream=url, **options)).test_client()


def messages(response: TestResponse) -> list[str]:
    return json.loads(response.headers.get(MESSAGES_HEADER, "[]"))  # type: ignore[no-any-return]


def recorded(client: FlaskClient) -> list[dict[str, Any]]:
    return client.get("/__mock/violations").json["violations"]  # type: ignore[index,no-any-return]


# -- the clean upstream: the seed scenarios -----------------------------------------------------


def _many(field: str, count: int) -> list[Any]:
    make: dict[str, Callable[[int], Any]] = {
        "provider_configs": lambda i: {"provider_name": f"provider-{i}"},
        "budgets": lambda i: {"max_limit": i + 1, "reset_duration": "1M"},
        "tags": lambda i: f"tag-{i}",
    }
    return [make[field](i) for i in range(count)]


def _completed_seed_example() -> dict[str, Any]:
    body = seed_example()
    for budget in body["budgets"] + body["provider_configs"][0]["budgets"]:
        budget["reset_duration"] = "1M"
    body["mcp_tool_overrides"][0]["action"] = "exclude"
    return body


def _spec_update_examples() -> list[dict[str, Any]]:
    document = yaml.safe_load(bundled_spec().read_text(encoding="utf-8"))
    examples = document["components"]["requestBodies"]["UpdateAccessProfile"]["content"]["application/json"]
    return [example["value"] for example in examples["examples"].values()]


def seed_scenarios(prefix: str) -> list[tuple[str, str, Any, dict[str, str], str | None]]:
    """(method, path, body, headers, the field a request violation names, or None for a valid request).

    The README's example requests, the seed document's PUT scenarios (tests/test_http_seed.py) and
    the spec's own PUT examples.
    """
    one = f"{prefix}/1"
    scenarios: list[tuple[str, str, Any, dict[str, str], str | None]] = [
        ("GET", prefix, None, {}, None),
        ("PUT", one, {"name": "Platform engineering (EU)"}, {}, None),
        ("PUT", one, {"rate_limit": None}, {}, None),
        ("PUT", one, {"tags": _many("tags", 51)}, {}, "tags"),
        ("PUT", one, {"name": "n" * 256}, {}, "name"),
        ("PUT", one, {"name": "x"}, {"Prefer": "code=409"}, None),
        ("GET", f"{prefix}/audit-logs", None, {"Prefer": "example=rows"}, None),
        ("GET", prefix, None, {"Prefer": "delay=10"}, None),
        ("PUT", one, {"tags": ["eu"]}, {}, None),
        ("PUT", one, {"description": "Only the description"}, {}, None),
        ("PUT", one, {"calendar_aligned": False}, {}, None),
        ("PUT", one, {"mcp_servers": [{"mcp_server_id": "linear"}]}, {}, None),
        ("PUT", one, {"budgets": [{"max_limit": 10, "reset_duration": "1d"}]}, {}, None),
        ("PUT", f"{prefix}/2", {"provider_configs": _many("provider_configs", 101)}, {}, "provider_configs"),
        ("PUT", f"{prefix}/2", {"budgets": _many("budgets", 101)}, {}, "budgets"),
        ("PUT", f"{prefix}/2", {"provider_configs": _many("provider_configs", 100)}, {}, None),
        ("PUT", f"{prefix}/2", {"budgets": _many("budgets", 100)}, {}, None),
        ("PUT", f"{prefix}/2", {"tags": _many("tags", 50)}, {}, None),
        (
            "PUT",
            f"{prefix}/2",
            {
                "provider_configs": [
                    {"provider_name": "openai", "budgets": [{"max_limit": 1, "reset_duration": "1d"}] * 101}
                ]
            },
            {},
            "provider_configs[0].budgets",
        ),
        ("POST", prefix, {"name": f"Everything {prefix}", "tags": _many("tags", 80)}, {}, None),
        ("POST", prefix, {"name": "n" * 256}, {}, "name"),
        ("PUT", f"{prefix}/3", {"name": "m" * 255}, {}, None),
        ("PUT", f"{prefix}/4", {"description": "revision 1"}, {}, None),
        ("PUT", one, seed_example(), {}, "reset_duration"),
        ("PUT", one, _completed_seed_example(), {}, None),
        ("POST", f"{prefix}/1/clone", {"name": f"Located {prefix}"}, {}, None),
        ("GET", f"{prefix}/1/versions", None, {}, None),
    ]
    scenarios += [("PUT", f"{prefix}/5", body, {}, None) for body in _spec_update_examples()]
    return scenarios


@pytest.mark.parametrize("prefix", [CANONICAL, LEGACY], ids=["canonical", "legacy"])
def test_the_clean_upstream_passes_the_seed_scenarios_with_no_answer_violation(
    upstream: tuple[str, Flask], prefix: str
) -> None:
    url, app = upstream
    client = proxy_client(url)
    for method, path, body, headers, field in seed_scenarios(prefix):
        response = client.open(path, method=method, json=body, headers={**AUTH, **headers})
        flagged = messages(response)
        if field is None:
            assert response.headers[VIOLATIONS_HEADER] == "0", (method, path, flagged)
        else:  # the scenario sends a request the spec refuses: flagged, forwarded, answered 400 by the mock
            assert response.status_code == 400, (method, path)
            assert flagged and all(m.startswith("request: ") for m in flagged), flagged
            assert field in flagged[0], (field, flagged)
    violations = recorded(client)
    assert [v for v in violations if v["status"] is not None] == []  # no answer broke the contract
    assert len(violations) == sum(1 for *_, field in seed_scenarios(prefix) if field)
    assert list(app.extensions["mockserver"].violations) == []


def test_answers_pass_through_unchanged(upstream: tuple[str, Flask]) -> None:
    url, app = upstream
    client = proxy_client(url)
    created = client.post(CANONICAL, json={"name": "Through the proxy"}, headers=AUTH)
    direct = app.test_client().get(created.headers["Location"], headers=AUTH)
    through = client.get(created.headers["Location"], headers=AUTH)
    assert created.status_code == 201
    assert created.headers["Location"] == f"{CANONICAL}/{created.json['access_profile']['id']}"
    assert through.get_data() == direct.get_data()
    assert through.headers["Content-Type"] == "application/json"
    assert through.headers[VIOLATIONS_HEADER] == "0"
    assert MESSAGES_HEADER not in through.headers


def test_a_body_up_to_the_size_limit_passes_through_intact(upstream: tuple[str, Flask]) -> None:
    url, app = upstream
    description = "d" * (1024 * 1024 - 100)  # with the name and the braces, just under the 1 MiB limit
    body = json.dumps({"name": "Large", "description": description}).encode()
    assert len(body) <= 1024 * 1024
    client = proxy_client(url)
    created = client.post(CANONICAL, data=body, content_type="application/json", headers=AUTH)
    assert created.status_code == 201, created.get_data(as_text=True)[:300]
    assert created.json["access_profile"]["description"] == description
    assert created.headers[VIOLATIONS_HEADER] == "0"
    through = client.get(created.headers["Location"], headers=AUTH)
    assert through.get_data() == app.test_client().get(created.headers["Location"], headers=AUTH).get_data()


# -- a broken upstream -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    """The variant whose answers lack the profile's updated_at (tests/broken_variants.py)."""
    with BackgroundServer(BY_NAME["field-missing"].build()) as server:
        yield server.url


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_a_broken_answer_is_passed_on_and_flagged_naming_the_field(broken: str) -> None:
    client = proxy_client(broken)
    response = client.get(f"{CANONICAL}/1", headers=ADMIN)
    assert response.status_code == 200
    assert "updated_at" not in response.json["access_profile"]  # the upstream's answer, as it was
    assert response.headers[VIOLATIONS_HEADER] == "1"
    assert messages(response) == ["answer: access_profile.updated_at: this field is required"]
    assert recorded(client) == [
        {
            "operation_id": "getAccessProfile",
            "method": "GET",
            "path": f"{CANONICAL}/1",
            "status": 200,
            "problems": ["access_profile.updated_at: this field is required"],
        }
    ]
    (entry,) = client.get("/__mock/journal").json["entries"]
    assert entry["violations"] == ["answer: access_profile.updated_at: this field is required"]
    assert entry["forwarded"] is True
    assert entry["status"] == 200


def test_with_errors_a_broken_answer_becomes_a_502_listing_the_violations(broken: str) -> None:
    client = proxy_client(broken, errors=True)
    response = client.get(f"{CANONICAL}?limit=2", headers=ADMIN)
    problems = [f"access_profiles[{i}].updated_at: this field is required" for i in range(2)]
    assert response.status_code == 502
    assert response.json == {
        "is_bifrost_error": False,
        "status_code": 502,
        "error": {
            "type": "bad_gateway",
            "message": f"the upstream's 200 answer to listAccessProfiles breaks the contract: {'; '.join(problems)}",
        },
        "extra_fields": {
            "error_type": "upstream_contract",
            "timeout": False,
            "upstream_status": 200,
            "violations": problems,
        },
    }
    assert response.headers[VIOLATIONS_HEADER] == "2"
    assert recorded(client)[0]["problems"] == problems


def test_with_errors_a_good_answer_still_passes(broken: str) -> None:
    """The variant's error answers keep the contract: --errors changes only broken ones."""
    response = proxy_client(broken, errors=True).get(f"{CANONICAL}/999", headers=ADMIN)
    assert response.status_code == 404
    assert response.json["error"]["type"] == "not_found"
    assert response.headers[VIOLATIONS_HEADER] == "0"


def test_a_request_without_credentials_is_flagged_and_still_forwarded() -> None:
    """Against the variant that serves anonymous requests as the admin, the proxy names the request."""
    with BackgroundServer(BY_NAME["no-401-without-credentials"].build()) as server:
        client = proxy_client(server.url)
        response = client.get(CANONICAL)
    assert response.status_code == 200
    assert messages(response) == [
        "request: authentication required: send Authorization: Bearer <token> or Basic credentials"
    ]
    assert recorded(client)[0]["status"] is None


# -- requests that break the contract ------------------------------------------------------------


def test_unknown_paths_and_methods_are_forwarded_and_flagged(upstream: tuple[str, Flask]) -> None:
    url, app = upstream
    client = proxy_client(url)
    unknown = client.get("/api/governance/nothing-here", headers=AUTH)
    assert unknown.status_code == 404  # the mock's answer
    assert messages(unknown) == ["request: no operation at /api/governance/nothing-here in the spec"]
    patched = client.patch(f"{CANONICAL}/1", json={}, headers=AUTH)
    assert patched.status_code == 405
    assert patched.headers["Allow"] == "DELETE, GET, PUT"
    assert messages(patched) == [
        f"request: PATCH is not defined on {CANONICAL}/{{profile_id}}; allowed: DELETE, GET, PUT"
    ]
    assert [e.method for e in app.extensions["mockserver"].journal] == ["GET", "PATCH"]


def test_reject_invalid_answers_a_broken_request_without_forwarding_it(upstream: tuple[str, Flask]) -> None:
    url, app = upstream
    client = proxy_client(url, reject_invalid=True)
    too_many = client.put(f"{CANONICAL}/1", json={"tags": _many("tags", 51)}, headers=AUTH)
    assert too_many.status_code == 400
    assert too_many.json["error"] == {
        "type": "invalid_request",
        "message": "tags: expected at most 50 items, got 51",
        "param": "tags",
    }
    anonymous = client.get(CANONICAL)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="bifrost"'
    text = client.post(CANONICAL, data="name=x", content_type="text/plain", headers=AUTH)
    assert text.status_code == 415
    unknown = client.get("/api/governance/nothing-here", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json["error"]["param"] == "path"
    assert all(r.headers[VIOLATIONS_HEADER] == "1" for r in (too_many, anonymous, text, unknown))
    assert list(app.extensions["mockserver"].journal) == []  # nothing reached the upstream
    refused = [(e["status"], e["refused_by"], e["forwarded"]) for e in client.get("/__mock/journal").json["entries"]]
    assert refused == [(400, "contract", False), (401, "auth", False), (415, "contract", False), (404, "route", False)]
    good = client.get(f"{CANONICAL}/1", headers=AUTH)
    assert good.status_code == 200 and good.headers[VIOLATIONS_HEADER] == "0"


# -- an upstream that does not answer ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_upstream_gives_502() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    response = proxy_client(url).get(CANONICAL, headers=AUTH)
    assert response.status_code == 502
    assert response.json == {
        "is_bifrost_error": False,
        "status_code": 502,
        "error": {"type": "bad_gateway", "message": f"cannot reach the upstream {url}: Connection refused"},
        "extra_fields": {"error_type": "upstream_unreachable", "timeout": False, "timeout_seconds": 30.0},
    }


def test_a_hung_upstream_gives_504_within_the_timeout() -> None:
    with socket.socket() as hung:  # accepts connections (the kernel does) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        response = proxy_client(url, timeout=0.5).get(CANONICAL, headers=AUTH)
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert 0.5 <= elapsed < 2.5
    assert response.json["error"] == {
        "type": "gateway_timeout",
        "message": f"the upstream {url} did not answer within 0.5 s",
    }
    assert response.json["extra_fields"] == {"error_type": "upstream_timeout", "timeout": True, "timeout_seconds": 0.5}


# -- credentials ---------------------------------------------------------------------------------

SECRETS = ("s3cr3t-bearer-9f8e", "s3cr3t-cookie-1a2b", "s3cr3t-apikey-3c4d", "s3cr3t-query-5e6f", "s3cr3t-bare-7a8b")


def test_credentials_reach_the_upstream_but_never_the_journal_violations_or_log(
    upstream: tuple[str, Flask], caplog: pytest.LogCaptureFixture
) -> None:
    url, app = upstream
    client = proxy_client(url)
    bearer, cookie, api_key, query, bare = SECRETS
    with caplog.at_level(logging.INFO, logger="mockserver"):
        ok = client.get(
            f"{CANONICAL}?limit=1&api_key={query}",
            headers={"Authorization": f"Bearer {bearer}", "Cookie": f"session={cookie}", "X-Api-Key": api_key},
        )
        refused = client.put(f"{CANONICAL}/1", json={"tags": _many("tags", 51)}, headers={"Authorization": bare})
    assert ok.status_code == 200  # the mock saw the bearer token and accepted it
    assert refused.status_code == 401  # the mock got the scheme-less header as sent, and refused it
    assert messages(refused)[0] == "request: unsupported Authorization header: send Bearer <token> or Basic credentials"
    proxy_lines = [r.getMessage() for r in caplog.records if r.threadName == "MainThread"]
    assert len(proxy_lines) == 2 and "api_key=[redacted]" in proxy_lines[0]
    shown = json.dumps([client.get("/__mock/journal").json, recorded(client), proxy_lines])
    for secret in SECRETS:
        assert secret not in shown
    # It was forwarded: the upstream (a mock, which hides credential-like query values too) got the parameter.
    assert app.extensions["mockserver"].journal.entries()[0].query["api_key"] == ["[redacted]"]


def test_headers_go_up_unchanged_except_hop_by_hop_ones() -> None:
    seen: dict[str, str] = {}

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.update({k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")})
        seen["query"] = environ.get("QUERY_STRING", "")
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", "b=2; Path=/"),
                ("X-Upstream", "kept"),
                ("Access-Control-Allow-Origin", "*"),
            ],
        )
        return [b"{}"]

    with BackgroundServer(echo) as server:
        # A client that keeps no cookies itself: any cookie the upstream sees next would be the proxy's.
        client = create_proxy_app(Settings(), ProxyOptions(upstream=server.url)).test_client(use_cookies=False)
        response = client.get(
            "/anything/%C3%A9?q=a%20b&q=c",
            headers={
                "Authorization": "Bearer t",
                "X-Custom": "kept",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "dropped",
                "Keep-Alive": "timeout=5",
                "Accept-Encoding": "gzip",
                "Origin": "http://localhost:5173",
            },
        )
        again = client.get("/anything", headers={"Authorization": "Bearer t"})
    assert seen["Authorization"] == "Bearer t"
    assert seen["X-Custom"] == "kept"
    assert seen["Origin"] == "http://localhost:5173"
    assert seen["Accept-Encoding"] == "identity"
    assert seen["Host"] == server.url.removeprefix("http://")
    assert "X-Hop" not in seen and "Keep-Alive" not in seen
    assert "Cookie" not in seen  # the first answer's cookies were not kept for the next request
    assert again.status_code == 200
    assert response.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["X-Upstream"] == "kept"
    # CORS is the proxy's: the browser talks to it, and one Allow-Origin header is all it accepts.
    assert response.headers.getlist("Access-Control-Allow-Origin") == ["http://localhost:5173"]
    assert VIOLATIONS_HEADER in response.headers["Access-Control-Expose-Headers"]


def test_the_query_and_path_go_up_as_the_client_wrote_them() -> None:
    seen: dict[str, str] = {}

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen["uri"] = environ["REQUEST_URI"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with BackgroundServer(echo) as upstream_server:
        proxy = create_proxy_app(Settings(), ProxyOptions(upstream=upstream_server.url))
        with BackgroundServer(proxy) as proxy_server:
            requests.get(f"{proxy_server.url}/api/x%2Fy/%C3%A9?tags=a,b&search=a%20b", timeout=5)
    assert seen["uri"] == "/api/x%2Fy/%C3%A9?tags=a,b&search=a%20b"


# -- control routes --------------------------------------------------------------------------------


def test_control_routes_of_the_proxy(upstream: tuple[str, Flask]) -> None:
    url, _ = upstream
    client = proxy_client(url)
    health = client.get("/__mock/health").json
    assert health["mode"] == "proxy" and health["upstream"] == url and health["violations"] == 0
    assert client.get("/openapi.json").json["info"]["title"].startswith("Bifrost")
    for method, path in [("GET", "/__mock/state"), ("POST", "/__mock/reset"), ("POST", "/__mock/snapshots/x")]:
        response = client.open(path, method=method)
        assert response.status_code == 404
        assert response.json["error"]["message"] == (
            f"mockserver proxy keeps no state: {path} is served by mockserver serve only; "
            "here: /__mock/ (the inspector page), /__mock/health, /__mock/violations, /__mock/journal"
        )
    with client.get("/__mock/") as page:
        assert page.status_code == 200 and b"inspector.js" in page.data  # the page, which hides the state part
    client.get("/nowhere", headers=AUTH)
    assert len(recorded(client)) == 1
    assert client.delete("/__mock/violations").json == {"violations": [], "dropped": 0}
    assert client.delete("/__mock/journal").json == {"entries": []}


def test_the_control_token_guards_the_proxys_control_routes(upstream: tuple[str, Flask]) -> None:
    url, _ = upstream
    app = create_proxy_app(Settings(control_token="ctl"), ProxyOptions(upstream=url))
    client = app.test_client()
    for path in ("/__mock/health", "/__mock/violations", "/__mock/journal", "/__mock/state"):
        assert client.get(path).status_code == 401, path
    assert client.get("/__mock/health", headers={"Authorization": "Bearer ctl"}).status_code == 200


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({}, {}, "--upstream is required"),
        ({}, {"upstream": "ftp://x"}, "must be an http:// or https:// URL"),
        ({}, {"upstream": "https://user:pw@staging.example"}, "must not hold credentials"),
        ({"MOCKSERVER_PROXY_TIMEOUT": "soon"}, {"upstream": "http://x"}, "expected a number of seconds"),
        ({}, {"upstream": "http://x", "timeout": 0}, "above 0"),
    ],
)
def test_bad_proxy_options_are_refused(env: dict[str, str], overrides: dict[str, Any], message: str) -> None:
    from mockserver.settings import SettingsError

    with pytest.raises(SettingsError, match=message):
        ProxyOptions.from_env(env, **overrides)


def test_proxy_options_from_the_environment() -> None:
    options = ProxyOptions.from_env(
        {"MOCKSERVER_PROXY_UPSTREAM": "https://staging.example/", "MOCKSERVER_PROXY_ERRORS": "true"}, timeout=5.0
    )
    assert options == ProxyOptions("https://staging.example", errors=True, reject_invalid=False, timeout=5.0)


def test_a_spec_of_ones_own(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(bundled_spec().read_text(encoding="utf-8"), encoding="utf-8")
    app = create_proxy_app(Settings(spec=spec), ProxyOptions(upstream="http://127.0.0.1:1"))
    assert app.test_client().get("/__mock/health").json["spec"]["source"] == str(spec.resolve())


# -- the command ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_mockserver_proxy_forwards_logs_without_credentials_and_stops_on_ctrl_c(upstream: tuple[str, Flask]) -> None:
    url, _ = upstream
    command = [sys.executable, "-m", "mockserver", "proxy", "--upstream", url, "--port", "0", "--errors"]
    with serve_command(command) as proxy:
        answer = requests.get(
            f"{proxy.url}{CANONICAL}/1?token={SECRETS[3]}",
            headers={"Authorization": f"Bearer {SECRETS[0]}"},
            timeout=10,
        )
        health = requests.get(f"{proxy.url}/__mock/health", timeout=10).json()
        code = proxy.stop()
    output = "".join(proxy.lines)
    assert answer.status_code == 200 and answer.headers[VIOLATIONS_HEADER] == "0"
    assert health["upstream"] == url and health["errors"] is True
    assert f"mockserver proxy: forwarding to {url}" in output and "(--errors)" in output
    assert f"GET {CANONICAL}/1?token=[redacted] getAccessProfile 200" in output
    assert SECRETS[0] not in output and SECRETS[3] not in output
    assert code == 0 and "mockserver stopped" in output


@pytest.mark.slow
def test_mockserver_proxy_refuses_a_bad_upstream() -> None:
    result = run_mockserver("proxy", "--upstream", "staging.example", timeout=60)
    assert result.returncode == 2
    assert "--upstream must be an http:// or https:// URL with a host, got 'staging.example'" in result.stderr


def _stub(status: str, headers: list[tuple[str, str]], body: bytes) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, headers)
        return [body]

    return app


@pytest.mark.parametrize(
    ("status", "headers", "body", "problem"),
    [
        ("200 OK", [("Content-Type", "text/html")], b"<h1>Hi</h1>", "the 200 answer is not JSON (text/html, 11 bytes)"),
        (
            "200 OK",
            [("Content-Type", "application/json")],
            b"",
            "the 200 answer has no body; the spec documents a JSON body",
        ),
        (
            "418 I'm a teapot",
            [("Content-Type", "application/json")],
            b"",
            "status 418 is not documented for getAccessProfile",
        ),
    ],
    ids=["html", "empty", "undocumented-status"],
)
def test_answers_that_are_not_the_documented_json_are_flagged(
    status: str, headers: list[tuple[str, str]], body: bytes, problem: str
) -> None:
    with BackgroundServer(_stub(status, headers, body)) as server:
        response = proxy_client(server.url).get(f"{CANONICAL}/1", headers=AUTH)
    assert response.status_code == int(status.split()[0])
    assert response.get_data() == body
    assert messages(response) == [f"answer: {problem}"]


def test_many_violations_are_counted_and_the_messages_header_stays_small() -> None:
    page = {
        "access_profiles": [{"id": i} for i in range(100)],
        "count": 100,
        "total_count": 100,
        "limit": 100,
        "offset": 0,
    }
    with BackgroundServer(_stub("200 OK", [("Content-Type", "application/json")], json.dumps(page).encode())) as server:
        client = proxy_client(server.url)
        response = client.get(CANONICAL, headers=AUTH)
    count = int(response.headers[VIOLATIONS_HEADER])
    (violation,) = recorded(client)
    assert count == len(violation["problems"]) > 100
    shown = messages(response)
    assert len(response.headers[MESSAGES_HEADER]) <= 4000
    assert shown[-1] == f"{count - len(shown) + 1} more: GET /__mock/violations"
    assert shown[0] == f"answer: {violation['problems'][0]}"
