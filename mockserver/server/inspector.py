"""``GET /__mock/``: the inspector page, a live view of the journal, the violations and the state.

The page is three static files shipped in the package (``inspector_files/``): HTML, CSS and a
script, with nothing from another host. They hold no data, so they load without the control token;
everything they show comes from the control routes (``server.control``), which the script calls
with the token when the mock has one. The answers carry a Content-Security-Policy that allows this
origin only, so the browser itself refuses any request elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, send_from_directory
from werkzeug.wrappers import Response

PAGE = "/__mock/"
FILES = Path(__file__).with_name("inspector_files")
# The files the page uses; nothing else in the folder is served.
ASSETS = frozenset({"inspector.js", "inspector.css"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

bp = Blueprint("inspector", __name__)


@bp.get(PAGE)
def page() -> Response:
    return _file("index.html", max_age=0)


@bp.get(PAGE.rstrip("/"))
def without_slash() -> Response:
    # The page's own URLs are relative to /__mock/. Werkzeug's automatic redirect would send an HTML body.
    return Response(status=308, headers={"Location": PAGE})


@bp.get(PAGE + "inspector/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404, f"no file {name!r} under {PAGE}inspector/; the page is at {PAGE}")
    return _file(name, max_age=0)


def _file(name: str, max_age: int) -> Response:
    # max_age 0: the browser revalidates (ETag), so an upgraded mock never runs an old script.
    response = send_from_directory(FILES, name, max_age=max_age)
    response.headers.update(SECURITY_HEADERS)
    return response


def register(app: Flask) -> None:
    missing = sorted(name for name in {"index.html", *ASSETS} if not (FILES / name).is_file())
    if missing:  # a broken install fails at start, not on the first visit
        raise RuntimeError(f"the inspector page's files are missing from {FILES}: {', '.join(missing)}")
    app.register_blueprint(bp)
