"""The proxy's client side: which headers go up, which upstream URLs are accepted, how answers are read."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from mockserver import BackgroundServer
from mockserver.server.upstream import Upstream, checked_base_url, forwarded_headers


def test_hop_by_hop_headers_and_those_connection_names_stay_behind() -> None:
    sent = forwarded_headers(
        [
            ("Authorization", "Basic YWRtaW46eA=="),
            ("Cookie", "session=1"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "for this hop"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic cHJveHk6eA=="),
            ("Host", "127.0.0.1:8080"),
            ("Content-Length", "12"),
            ("Content-Type", "application/json"),
            ("Accept-Encoding", "gzip, br"),
            ("Prefer", "code=404"),
        ]
    )
    assert sent == {
        "Authorization": "Basic YWRtaW46eA==",
        "Cookie": "session=1",
        "Content-Type": "application/json",
        "Prefer": "code=404",
        "Accept-Encoding": "identity",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bifrost.staging.example/", "https://bifrost.staging.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://gateway.example/bifrost/", "https://gateway.example/bifrost"),
    ],
)
def test_upstream_urls(url: str, expected: str) -> None:
    assert checked_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bifrost.example", "must be an http:// or https:// URL with a host"),
        ("https://admin:pw@bifrost.example", "must not hold credentials"),
        ("https://bifrost.example/?x=1", "without a query or fragment"),
    ],
)
def test_upstream_urls_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checked_base_url(url)


def test_an_answer_compressed_anyway_is_passed_on_decoded() -> None:
    """The proxy asks for identity; an upstream that compresses anyway is decoded, and says so no more."""
    body = b'{"message": "' + b"x" * 2000 + b'"}'

    def gzipped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        packed = gzip.compress(body)
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("Content-Length", str(len(packed)))],
        )
        return [packed]

    with BackgroundServer(gzipped) as server:
        reply = Upstream(server.url, timeout=5).send("GET", "/x?y=1", {}, b"")
    assert reply.status == 200
    assert reply.body == body
    assert reply.header("Content-Encoding") is None and reply.header("Content-Length") is None
    assert reply.header("content-type") == "application/json"
