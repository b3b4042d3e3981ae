"""The inspector page at /__mock/: served from the package, live in a browser, guarded by the control token."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import requests
from conftest import CANONICAL, Api, error_of
from flask import Flask
from flask.testing import FlaskClient
from serving import serve
from test_docs_page import CHROMIUM, CHROMIUM_ARGS

from mockserver.server.context import Violation
from mockserver.server.inspector import FILES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PAGE = "/__mock/"
TOKEN = "s3cret-control"
AUTH = {"Authorization": "Bearer ui-dev"}
CONTENT_TYPES = {".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"}}


def references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def fetch(client: FlaskClient, path: str, **kwargs: Any) -> tuple[int, str | None, dict[str, str], bytes]:
    """Status, media type, headers and body; the response is closed (a served file stays open until then)."""
    with client.open(path, **kwargs) as response:
        return response.status_code, response.mimetype, dict(response.headers), response.get_data()


def test_the_page_and_its_files_come_from_the_package(api: Api) -> None:
    status, mimetype, headers, body = fetch(api.client, PAGE)
    assert status == 200 and mimetype == "text/html"
    html = body.decode()
    assert html == (FILES / "index.html").read_text(encoding="utf-8")  # the file as shipped: no data in it
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    files = [ref for ref in references(html) if ref.startswith("inspector/")]
    assert sorted(files) == ["inspector/inspector.css", "inspector/inspector.js"]
    for ref in files:
        status, mimetype, headers, body = fetch(api.client, PAGE + ref)
        assert status == 200, ref
        assert mimetype in CONTENT_TYPES[ref[ref.rindex(".") :]]
        assert body == (FILES / ref.removeprefix("inspector/")).read_bytes()
    # Nothing names another host: the other references are the mock's own pages and an inline icon.
    for text in [html, *((FILES / name).read_text(encoding="utf-8") for name in ("inspector.js", "inspector.css"))]:
        assert not re.search(r"https?://", text)
    assert sorted(ref for ref in references(html) if not ref.startswith("inspector/")) == [
        "../docs",
        "../openapi.json",
        "data:,",
    ]
    assert api.mock.journal.entries() == []  # none of it went through the API


def test_the_path_without_its_slash_leads_to_the_page(api: Api) -> None:
    response = api.client.get("/__mock")
    assert (response.status_code, response.headers["Location"], response.get_data()) == (308, PAGE, b"")


def test_only_the_pages_files_are_served(api: Api) -> None:
    for path in ("/__mock/inspector/index.html", "/__mock/inspector/../../pyproject.toml", "/__mock/inspector/x.js"):
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["type"] == "not_found"


# What the page's script calls, relative to /__mock/ (each with the method it uses).
PAGE_CALLS = [
    ("GET", "health"),
    ("GET", "journal?after=0"),
    ("GET", "journal/1"),
    ("DELETE", "journal"),
    ("GET", "violations"),
    ("GET", "state/counts"),
    ("GET", "state/profiles"),
    ("GET", "state/profiles/1"),
    ("GET", "snapshots"),
    ("POST", "snapshots/a"),
    ("POST", "snapshots/a/restore"),
    ("DELETE", "snapshots/a"),
    ("POST", "reset"),
    ("GET", "sessions"),
]


def test_the_list_of_calls_is_the_scripts() -> None:
    # Every path the script builds starts like one of PAGE_CALLS, so the token test below covers them all.
    script = (FILES / "inspector.js").read_text(encoding="utf-8")
    used = set(re.findall(r'(?:call|act)\("([^"?]+)', script))
    assert used == {
        "health",
        "journal",
        "journal/",
        "violations",
        "state/counts",
        "state/profiles",
        "snapshots",
        "snapshots/",
        "reset",
        "sessions",
    }
    assert all(any(path.startswith(prefix) for _, path in PAGE_CALLS) for prefix in used)
    assert 'call(link.getAttribute("href"))' in script and 'link.href = "state/profiles/"' in script


def test_with_a_control_token_the_page_loads_but_its_calls_need_the_token(make_app: Callable[..., Flask]) -> None:
    client = make_app(control_token=TOKEN).test_client()
    client.get(CANONICAL + "/1", headers=AUTH)  # journal entry 1
    status, _, _, page = fetch(client, PAGE)
    assert status == 200
    for ref in references(page.decode()):
        if ref.startswith("inspector/"):
            assert fetch(client, PAGE + ref)[0] == 200, ref
    for method, path in PAGE_CALLS:
        refused = client.open(PAGE + path, method=method)
        assert refused.status_code == 401, (method, path)
        assert error_of(refused)["type"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="mockserver control"'
        wrong = client.open(PAGE + path, method=method, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, (method, path)
        allowed = client.open(PAGE + path, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code in (200, 201), (method, path, allowed.get_data(as_text=True))


# -- in a real browser -----------------------------------------------------------------------------------


@contextmanager
def browser_page(origin: str) -> Iterator[tuple[Page, list[str], list[str]]]:
    """A Chromium page that may reach only ``origin``; (page, every URL it requested, script errors)."""
    from playwright.sync_api import Route, sync_playwright

    requested: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def only_the_mock(route: Route) -> None:
                # Anything bound elsewhere is refused (and stays in `requested`, for the test to see).
                if route.request.url.startswith(origin + "/"):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", only_the_mock)
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            yield page, requested, errors
        finally:
            browser.close()


def appears_within_a_second(page: Page, count: int) -> Any:
    """The newest row, once the table holds ``count`` rows (at most 1 s after the request was answered)."""
    from playwright.sync_api import expect

    rows = page.locator("#rows tr.row")
    expect(rows).to_have_count(count, timeout=1_000)
    return page.locator(f"#rows tr.row[data-seq='{rows.first.get_attribute('data-seq')}']")  # stays on this row


@pytest.mark.slow
def test_the_inspector_in_a_browser() -> None:
    from playwright.sync_api import expect

    with serve("--no-watch") as served, browser_page(served.url) as (page, requested, errors):
        origin = served.url
        api = f"{origin}{CANONICAL}"
        page.goto(f"{origin}{PAGE}")
        expect(page.locator("#live")).to_have_text("live", timeout=10_000)
        expect(page.locator("#no-requests")).to_be_visible()

        # A valid PUT, sent from outside the page.
        assert requests.put(f"{api}/1", json={"name": "Before the snapshot"}, headers=AUTH, timeout=5).ok
        row = appears_within_a_second(page, 1)
        expect(row.locator(".method")).to_have_text("PUT")
        expect(row.locator(".op")).to_have_text("updateAccessProfile")
        expect(row.locator(".badge")).to_have_text("200")
        expect(row).to_have_class(re.compile(r"\bs2\b"))
        expect(row.locator(".reason")).to_have_count(0)

        # One the contract refuses: 51 tags.
        tags = [f"t{i}" for i in range(51)]
        assert requests.put(f"{api}/1", json={"tags": tags}, headers=AUTH, timeout=5).status_code == 400
        refused = appears_within_a_second(page, 2)
        expect(refused.locator(".badge")).to_have_text("400")
        reason = refused.locator(".reason").inner_text()
        assert "contract" in reason and "tags" in reason and "at most 50" in reason, reason

        # One without credentials.
        assert requests.get(f"{api}/1", timeout=5).status_code == 401
        unauthenticated = appears_within_a_second(page, 3)
        expect(unauthenticated.locator(".reason")).to_contain_text("refused by the auth check")

        # The refused PUT in full: which check, which field, the limit; what was sent and answered.
        refused.click()
        details = page.locator("#details")
        expect(details.locator(".refusal .check")).to_have_text("Refused by the contract check · field tags")
        expect(details.locator(".refusal .message")).to_have_text("tags: expected at most 50 items, got 51")
        expect(details.locator("pre.json").first).to_contain_text('"t50"')
        expect(details.locator("table.pairs").first).to_contain_text("Bearer ****")
        assert "ui-dev" not in details.inner_text()
        expect(details.locator("pre.json").nth(1)).to_contain_text('"param": "tags"')

        # Filters: status class, operation, text.
        page.select_option("#filter-status", "4")
        expect(page.locator("#rows tr.row:visible")).to_have_count(2)
        page.select_option("#filter-status", "")
        page.select_option("#filter-operation", "getAccessProfile")
        expect(page.locator("#rows tr.row:visible")).to_have_count(1)
        page.select_option("#filter-operation", "")
        page.fill("#filter-text", "at most 50")
        expect(page.locator("#rows tr.row:visible")).to_have_count(1)
        page.fill("#filter-text", "")

        # No violations, and the page says so.
        page.click(".tab[data-tab=violations]")
        expect(page.locator("#violations .healthy")).to_contain_text("No contract violations")
        expect(page.locator("#violations-count")).to_have_text("0")
        # A mock that broke its contract (the answer stood in for here, in the endpoint's own shape).
        broken = Violation("getAccessProfile", "GET", f"{CANONICAL}/3", 200, ("access_profile.version: required",))
        page.route(
            "**/__mock/violations",
            lambda route: route.fulfill(json={"violations": [broken.as_dict()]}),
        )
        expect(page.locator("#violations ol.violations > li")).to_have_count(1, timeout=5_000)
        expect(page.locator("#violations ol.violations")).to_contain_text(
            f"GET {CANONICAL}/3 getAccessProfile answered 200"
        )
        expect(page.locator("#violations .problems")).to_have_text("access_profile.version: required")
        expect(page.locator("#violations-count")).to_have_text("1")
        page.unroute("**/__mock/violations")
        expect(page.locator("#violations .healthy")).to_be_visible(timeout=5_000)

        # State: counts, profiles, and a snapshot saved, the state changed, the snapshot restored.
        page.click(".tab[data-tab=state]")
        expect(page.locator("[data-count=profiles] dd")).to_have_text("10")
        expect(page.locator("[data-count=versions] dd")).to_have_text("11")  # ten seeded, one rename
        page.locator("#profiles a[data-id='1']").click()
        expect(page.locator("#profile-json")).to_contain_text('"name": "Before the snapshot"')
        page.fill("#snapshot-name", "before-change")
        page.click("#snapshot-form button[type=submit]")
        snapshot = page.locator("#snapshots li[data-name=before-change]")
        expect(snapshot).to_contain_text("10 profiles")
        assert requests.put(f"{api}/1", json={"name": "Changed after"}, headers=AUTH, timeout=5).ok
        expect(page.locator("#profiles a[data-id='1']")).to_have_text("Changed after", timeout=5_000)
        snapshot.locator("button.restore").click()
        expect(page.locator("#toast")).to_have_text("Restored snapshot before-change")
        assert (
            requests.get(f"{api}/1", headers=AUTH, timeout=5).json()["access_profile"]["name"] == "Before the snapshot"
        )
        expect(page.locator("#profiles a[data-id='1']")).to_have_text("Before the snapshot")

        # Reset asks first: dismissed, nothing happens; accepted, the fixtures are back.
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("#reset")
        time.sleep(0.3)
        assert (
            requests.get(f"{api}/1", headers=AUTH, timeout=5).json()["access_profile"]["name"] == "Before the snapshot"
        )
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#reset")
        expect(page.locator("#toast")).to_have_text("State reset to the fixtures")
        assert (
            requests.get(f"{api}/1", headers=AUTH, timeout=5).json()["access_profile"]["name"] == "Platform engineering"
        )

        # Still usable at 1,000 entries: the table keeps what the journal keeps, and the newest still shows at once.
        page.click(".tab[data-tab=requests]")
        with requests.Session() as session:
            for n in range(1_000):
                session.get(f"{api}/{n % 10 + 1}", headers=AUTH, timeout=5)
        expect(page.locator("#rows tr.row")).to_have_count(1_000, timeout=10_000)
        assert requests.delete(f"{api}/999", headers=AUTH, timeout=5).status_code == 404
        newest = page.locator("#rows tr.row").first
        # The page asks every 0.4 s; 2 s leaves room for a test machine busy with other tests.
        expect(newest.locator(".method")).to_have_text("DELETE", timeout=2_000)
        expect(page.locator("#rows tr.row")).to_have_count(1_000)
        # The page says that older requests went, and which bounds the journal keeps.
        expect(page.locator("#dropped")).to_contain_text(
            "older requests were dropped: the journal keeps the last 1,000"
        )
        expect(page.locator("#dropped")).to_contain_text("64 MiB for all sessions together (--journal-mb)")
        started = time.monotonic()
        page.fill("#filter-text", "/999")
        expect(page.locator("#rows tr.row:visible")).to_have_count(1, timeout=1_000)
        filtered_in = time.monotonic() - started
        page.click("#clear-journal")  # DELETE /__mock/journal: the page drops what the journal dropped
        expect(page.locator("#rows tr.row")).to_have_count(0)
        expect(page.locator("#no-requests")).to_be_visible()
        expect(page.locator("#dropped")).to_be_hidden()  # a clear is not a drop
        assert requests.get(f"{origin}/__mock/journal", timeout=5).json()["entries"] == []
        logged = [
            m.group(1) for m in re.finditer(r"^\S+ (?:GET|PUT|POST|DELETE|HEAD) (\S+)", "".join(served.lines), re.M)
        ]
    assert errors == []
    assert requested and all(url.startswith(origin + "/") for url in requested), requested
    assert filtered_in < 1.0
    # The page's own calls never reach the API (no /favicon.ico either): the API saw only the test's requests.
    # The test sent 1,008 requests: 8 above and the 1,000 reads.
    assert len(logged) == 1_008 and all(path.startswith(CANONICAL) for path in logged), set(logged)


@pytest.mark.slow
def test_the_page_asks_for_the_control_token_once() -> None:
    from playwright.sync_api import Response, expect

    with serve("--no-watch", "--control-token", TOKEN) as served, browser_page(served.url) as (page, requested, errors):
        origin = served.url
        answers: list[tuple[str, int]] = []

        def note(response: Response) -> None:
            if "/__mock/" in response.url and "/__mock/inspector/" not in response.url:
                answers.append((response.url.removeprefix(origin), response.status))

        page.on("response", note)
        assert requests.get(f"{origin}{CANONICAL}/2", headers=AUTH, timeout=5).ok
        page.goto(f"{origin}{PAGE}")
        expect(page.locator("#token-prompt")).to_be_visible(timeout=10_000)
        assert answers and all(status == 401 for url, status in answers if url != PAGE), answers
        page.fill("#token-input", "wrong")
        page.click("#token-form button[type=submit]")
        expect(page.locator("#token-error")).to_have_text("The mock refused that token.", timeout=5_000)
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#rows tr.row")).to_have_count(1, timeout=5_000)
        expect(page.locator("#live")).to_have_text("live")
        answers.clear()
        page.reload()  # the tab keeps the token: no second question
        expect(page.locator("#rows tr.row")).to_have_count(1, timeout=10_000)
        expect(page.locator("#token-prompt")).to_be_hidden()
        calls = [url for url, _ in answers if url != PAGE]
        assert calls and all(status in (200, 304) for url, status in answers), answers
        assert requests.get(f"{origin}/__mock/journal", timeout=5).status_code == 401  # still guarded
    assert errors == [] or all("401" in error for error in errors), errors
    assert all(url.startswith(origin + "/") for url in requested)


@pytest.mark.slow
def test_the_page_shows_one_session_and_switches_to_another() -> None:
    from playwright.sync_api import expect

    with serve("--no-watch") as served, browser_page(served.url) as (page, requested, errors):
        origin = served.url
        in_alice = {**AUTH, "X-Mockserver-Session": "alice"}
        assert requests.get(f"{origin}{CANONICAL}/1", headers=in_alice, timeout=5).ok
        assert requests.get(f"{origin}{CANONICAL}/2", headers=AUTH, timeout=5).ok  # the default state
        page.goto(f"{origin}/__session/alice{PAGE}")
        rows = page.locator("#rows tr.row")
        expect(rows).to_have_count(1, timeout=10_000)
        expect(rows.first).to_contain_text(f"{CANONICAL}/1")
        expect(page.locator("#session")).to_have_value("alice")
        assert requests.get(f"{origin}{CANONICAL}/3", headers=in_alice, timeout=5).ok
        expect(rows).to_have_count(2, timeout=1_000)  # live, in the session
        page.select_option("#session", "")
        page.wait_for_url(f"{origin}{PAGE}")
        expect(rows).to_have_count(1, timeout=10_000)
        expect(rows.first).to_contain_text(f"{CANONICAL}/2")
        expect(page.locator("#session option")).to_have_text(["default", "alice"])
    assert errors == []
    assert all(url.startswith(origin + "/") for url in requested)
