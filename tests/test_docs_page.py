"""GET /docs: Swagger UI over the served spec, with every file it needs served by the mock itself."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import requests
from conftest import CANONICAL, Api, error_of
from flask import Flask
from flask.testing import FlaskClient
from serving import serve

from mockserver.resources import bundled_api_keys, bundled_fixtures
from mockserver.server.docs_page import DOCS_TOKEN

# What a file's extension says it must be served as.
CONTENT_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}


class _References(HTMLParser):
    """Every URL the page loads by itself: script sources, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


def references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


def fetch(client: FlaskClient, url: str) -> tuple[int, str, bytes]:
    """Status, media type and body; the response is closed (a file stays open until then)."""
    with client.get(url) as response:
        return response.status_code, response.mimetype, response.get_data()


def settings_of(page: str) -> dict[str, str | None]:
    """The settings object the page hands to its script."""
    found = re.search(r"var settings = (\{.*?\});", page)
    assert found, page
    return json.loads(found.group(1))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_the_page_is_html_that_loads_only_files_of_the_mock(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert not re.search(r"(?i)(https?:)?//", page), "the page names another host"
    urls = references(page)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("swagger-ui.css") for url in urls)
    for url in urls:
        assert url.startswith("/docs/"), url
        status, mimetype, body = fetch(api.client, url)
        assert status == 200, url
        assert mimetype in CONTENT_TYPES[url[url.rindex(".") :]], (url, mimetype)
        assert len(body) > 100, url
    assert api.mock.journal.entries() == []  # none of it went through the API


def test_the_page_reads_the_served_spec_and_preauthorises_in_permissive_mode(api: Api) -> None:
    settings = settings_of(api.client.get("/docs").get_data(as_text=True))
    assert settings == {"spec": "/openapi.json", "scheme": "ManagementBearerAuth", "token": DOCS_TOKEN}
    # The token the page fills in is one the mock accepts.
    assert api.client.get(CANONICAL, headers={"Authorization": f"Bearer {DOCS_TOKEN}"}).status_code == 200


def test_with_api_keys_the_page_leaves_authorisation_to_the_user(make_app: Callable[..., Flask]) -> None:
    client = make_app(api_keys=bundled_api_keys()).test_client()
    assert settings_of(client.get("/docs").get_data(as_text=True))["token"] is None
    assert client.get(CANONICAL, headers={"Authorization": f"Bearer {DOCS_TOKEN}"}).status_code == 401


def test_try_it_out_calls_the_origin_of_the_page(api: Api) -> None:
    # Swagger UI sends "Try it out" to the spec's servers, resolved against the spec's URL: a
    # relative server keeps the requests on the mock that served the page.
    servers = api.client.get("/openapi.json").json["servers"]
    assert servers and all(not urlsplit(server["url"]).netloc for server in servers), servers


def test_the_page_needs_no_control_token(make_app: Callable[..., Flask]) -> None:
    client = make_app(control_token="s3cret").test_client()
    page = client.get("/docs")
    assert page.status_code == 200
    for url in [*references(page.get_data(as_text=True)), settings_of(page.get_data(as_text=True))["spec"]]:
        assert url is not None and fetch(client, url)[0] == 200, url
    assert client.get("/__mock/state").status_code == 401


def test_only_the_pages_files_are_served(api: Api) -> None:
    for path in ("/docs/VERSION", "/docs/oauth2-redirect.html", "/docs/../pyproject.toml", "/docs/a/b"):
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["type"] == "not_found"
    # A path that only starts like the page's is the API's (and unknown there).
    assert api.client.get("/docsx").status_code == 404
    assert [entry.path for entry in api.mock.journal.entries()] == ["/docsx"]


# -- in a real browser -----------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make test` installs it when it is missing
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIST_PATH = CANONICAL


@pytest.mark.slow
def test_try_it_out_in_a_browser_shows_the_fixtures() -> None:
    from playwright.sync_api import Request, Route, expect, sync_playwright

    fixture_names = {p["name"] for p in json.loads(bundled_fixtures().read_text(encoding="utf-8"))["access_profiles"]}
    foreign: list[str] = []
    calls: list[Request] = []
    with serve("--no-watch") as served, sync_playwright() as playwright:
        origin = served.url

        def only_the_mock(route: Route) -> None:
            # The page must work offline: anything bound for another host is refused and noted.
            if route.request.url.startswith(origin + "/"):
                route.continue_()
            else:
                foreign.append(route.request.url)
                route.abort()

        def note(request: Request) -> None:
            if urlsplit(request.url).path == LIST_PATH:
                calls.append(request)

        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_the_mock)
            page.on("request", note)
            page.goto(f"{origin}/docs")
            operation = page.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{LIST_PATH}"])')
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            answer = operation.locator(".live-responses-table tbody")
            expect(answer.locator(".response-col_status")).to_have_text("200", timeout=15_000)
            # The panel shows what the mock answers to that request (the form starts from the
            # spec's examples, so it is a filtered page of the fixtures).
            assert len(calls) == 1
            call = calls[0]
            assert call.url.startswith(origin + LIST_PATH)
            assert call.headers["authorization"] == f"Bearer {DOCS_TOKEN}"
            listed = requests.get(call.url, headers={"Authorization": "Bearer test"}, timeout=5).json()
            names = [p["name"] for p in listed["access_profiles"]]
            assert names and set(names) <= fixture_names
            for name in names:
                expect(answer.locator(".response-col_description")).to_contain_text(json.dumps(name))
        finally:
            browser.close()
        log = "".join(served.lines)
    assert foreign == []
    assert re.search(rf"GET {LIST_PATH}\S* listAccessProfiles 200 ", log), log
