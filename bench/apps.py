"""The app `make bench` serves beside `mockserver serve`: a fixed 200 with a body the size of GET one
profile's answer, what a server does when the app costs nothing (the ceiling the mock is measured
against). ``python bench/apps.py trivial PORT THREADS`` serves it on waitress; granian imports
``bench.apps:trivial`` (WSGI) or ``bench.apps:trivial_rsgi`` (RSGI, as ``mockserver serve`` runs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

# The size of GET /api/governance/access-profiles/1 with the default fixtures.
BODY = b'{"access_profile":{"id":1,"name":"' + b"x" * 1880 + b'"}}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def trivial(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]


async def trivial_rsgi(scope: Any, proto: Any) -> None:
    proto.response_bytes(200, HEADERS, BODY)


if __name__ == "__main__":
    from waitress import serve

    port, threads = int(sys.argv[2]), int(sys.argv[3])
    serve(trivial, host="127.0.0.1", port=port, threads=threads, ident="bench")
