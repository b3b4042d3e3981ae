"""Make docs/images/inspector.png: a served mock, a few requests, the inspector page in Chromium.

Run it with `make screenshot` (Debian's chromium, as the browser tests use). The requests are those
of a UI session: reads, a rename, a create, and refusals of each kind.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "images" / "inspector.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
API = "/api/governance/access-profiles"
TOKEN = "Bearer my-ui"


@contextmanager
def served() -> Iterator[str]:
    """A mock on a free port, from the fixtures; its base URL."""
    command = [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--no-watch", "--sequential-ids"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        for line in process.stdout:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                yield found.group(1)
                return
        raise SystemExit("mockserver exited before listening")
    finally:
        process.terminate()
        process.wait(timeout=10)


def send(base: str, method: str, path: str, body: object = None, auth: str | None = TOKEN) -> int:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        headers["Authorization"] = auth
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def session(base: str) -> None:
    """What a UI might send in its first minute."""
    calls: list[tuple[str, str, object, str | None, int]] = [
        ("GET", f"{API}?limit=25", None, TOKEN, 200),
        ("GET", f"{API}/1", None, TOKEN, 200),
        ("PUT", f"{API}/1", {"name": "Platform engineering (EU)"}, TOKEN, 200),
        ("POST", API, {"name": "Design team", "tags": ["design"]}, TOKEN, 201),
        ("GET", f"{API}/42", None, TOKEN, 404),
        ("DELETE", f"{API}/8", None, TOKEN, 409),
        ("GET", f"{API}/1/versions", None, None, 401),
        ("PUT", f"{API}/2/deactivate", None, TOKEN, 200),
        ("PUT", f"{API}/1", {"tags": [f"team-{i}" for i in range(51)]}, TOKEN, 400),
        ("GET", f"{API}?search=platform", None, TOKEN, 200),
    ]
    for method, path, body, auth, expected in calls:
        status = send(base, method, path, body, auth)
        if status != expected:
            raise SystemExit(f"{method} {path}: expected {expected}, got {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with served() as base, sync_playwright() as playwright:
        # `mockserver serve` loads openapi-core, which explains refusals, 2 s after it starts; a refusal
        # sent before pays for that load, and the picture would show it as a slow request.
        time.sleep(3)
        session(base)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
            page.goto(f"{base}/__mock/")
            refused = page.locator("tr.row", has_text="expected at most 50 items")
            expect(refused).to_be_visible(timeout=10_000)
            refused.click()
            expect(page.locator("#details .refusal")).to_be_visible(timeout=10_000)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output))
        finally:
            browser.close()
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
