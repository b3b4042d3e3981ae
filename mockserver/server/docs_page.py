"""``GET /docs``: an interactive page (Swagger UI) over the spec the mock serves, usable offline.

The JavaScript and CSS are the Swagger UI distribution files that the flask-swagger-ui wheel ships;
the mock serves them itself under ``/docs/``, so the page makes no request to another host. Only the
files are used: the page and its configuration are ours (the package's own blueprint takes JSON
settings only, and the page needs a function).

"Try it out" sends its requests to the origin the page came from: the page loads ``/openapi.json``,
whose ``servers`` entry is the relative ``/``. With permissive authentication the page authorises
the spec's bearer scheme with a placeholder token, so every operation works without a visit to
"Authorize"; with ``--api-keys`` nothing is filled in, since only a key from that file would work.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, render_template_string, send_from_directory, url_for
from werkzeug.wrappers import Response

from mockserver.server.context import current_mock

PREFIX = "/docs"
DOCS_TOKEN = "mock-docs"  # what "Try it out" sends in permissive mode; any bearer token is an admin there
# The distribution files the page uses; nothing else of the package is served.
ASSETS = frozenset({"swagger-ui.css", "index.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})

bp = Blueprint("docs_page", __name__)


def is_docs(path: str) -> bool:
    """Whether a request path belongs to this page rather than to the API."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@cache
def assets_folder() -> Path:
    """The folder of Swagger UI's distribution files inside the installed flask-swagger-ui."""
    found = importlib.util.find_spec("flask_swagger_ui")
    if found is None or found.origin is None:
        raise RuntimeError("the /docs page needs the flask-swagger-ui package (a dependency of mockserver)")
    folder = Path(found.origin).parent / "dist"
    missing = sorted(name for name in ASSETS if not (folder / name).is_file())
    if missing:
        raise RuntimeError(f"flask-swagger-ui at {folder} lacks {', '.join(missing)}")
    return folder


def bearer_scheme(document: dict[str, Any]) -> str | None:
    """The name of the spec's first HTTP bearer security scheme, if it has one."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    for name, scheme in schemes.items():
        if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            return str(name)
    return None


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }} · mockserver</title>
  <link rel="stylesheet" href="{{ asset('index.css') }}">
  <link rel="stylesheet" href="{{ asset('swagger-ui.css') }}">
  <link rel="icon" type="image/png" sizes="32x32" href="{{ asset('favicon-32x32.png') }}">
  <link rel="icon" type="image/png" sizes="16x16" href="{{ asset('favicon-16x16.png') }}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{{ asset('swagger-ui-bundle.js') }}"></script>
  <script>
    window.addEventListener("load", function () {
      var settings = {{ settings|tojson }};
      var ui = SwaggerUIBundle({
        url: settings.spec,
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        deepLinking: true,
        validatorUrl: null,
        onComplete: function () {
          if (settings.scheme && settings.token) {
            ui.preauthorizeApiKey(settings.scheme, settings.token);
          }
        }
      });
      window.ui = ui;
    });
  </script>
</body>
</html>
"""


@bp.get(PREFIX)
@bp.get(PREFIX + "/")
def page() -> str:
    mock = current_mock()
    document = mock.spec.document
    settings = {
        "spec": url_for("control.openapi_document"),
        "scheme": bearer_scheme(document),
        "token": None if mock.auth.keyring else DOCS_TOKEN,
    }
    title = str(document.get("info", {}).get("title", "API"))
    return render_template_string(PAGE, title=title, settings=settings, asset=_asset_url)


@bp.get(PREFIX + "/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404, f"no file {name!r} under {PREFIX}/; the page is at {PREFIX}")
    return send_from_directory(assets_folder(), name, max_age=3600)


def _asset_url(name: str) -> str:
    return url_for("docs_page.asset", name=name)


def register(app: Flask) -> None:
    assets_folder()  # a broken install fails at start, not on the first visit
    app.register_blueprint(bp)
