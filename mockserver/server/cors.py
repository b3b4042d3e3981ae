"""CORS for browser apps served from another origin (another localhost port, say).

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here with 204 and
the allow headers; every other answer to an allowed origin gets the CORS headers. A plain OPTIONS
without those headers is not a preflight: it reaches the API, which answers 405 with Allow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

ALLOWED_HEADERS = "Authorization, Content-Type, Prefer, X-Mockserver-Session"
ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
EXPOSED_HEADERS = "Location, WWW-Authenticate, Allow, Retry-After"
MAX_AGE = "600"


class Cors:
    """WSGI middleware; ``origins`` is ``*`` (any), or a comma-separated list of allowed origins.

    ``exposed``: the answer headers a page's script may read.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], origins: str, exposed: str = EXPOSED_HEADERS) -> None:
        self.app = app
        self.exposed = exposed
        names = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
        self.any = "*" in names
        self.origins = frozenset(names)

    def allows(self, origin: str) -> bool:
        return self.any or origin.rstrip("/") in self.origins

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or not self.allows(origin):
            return self.app(environ, start_response)
        preflight = environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        if preflight:
            requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
            start_response(
                "204 No Content",
                [
                    *self._headers(origin),
                    ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                    ("Access-Control-Allow-Headers", requested or ALLOWED_HEADERS),
                    ("Access-Control-Max-Age", MAX_AGE),
                    ("Content-Length", "0"),
                ],
            )
            return [b""]

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *self._headers(origin)], exc_info)

        return self.app(environ, with_cors)

    def _headers(self, origin: str) -> list[tuple[str, str]]:
        # The origin is echoed (not "*"), so requests with credentials work too.
        return [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Expose-Headers", self.exposed),
            ("Vary", "Origin"),
        ]
