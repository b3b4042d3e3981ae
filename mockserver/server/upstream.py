"""The proxy's side toward the upstream: requests passed on as they came, answers read whole.

Headers go through unchanged except the hop-by-hop ones (RFC 9110, 7.6.1) and ``Accept-Encoding``:
the proxy asks for an uncompressed answer because it reads every answer to check it.
"""

from __future__ import annotations

import http.cookiejar
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

# Headers that concern one connection only, never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Also set by the proxy itself on the way up: the upstream's Host, the length of what is sent, and
# an uncompressed answer (the proxy must read it); 100-continue is between the client and us.
_NOT_SENT_UP = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect"}
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


class UpstreamError(Exception):
    """The upstream could not be reached, or did not answer in time."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


@dataclass(frozen=True)
class Reply:
    """The upstream's answer: status, headers (hop-by-hop ones removed, repeated ones kept) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


def checked_base_url(url: str) -> str:
    """The upstream's root URL without a trailing slash, or ``ValueError`` saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--upstream must be an http:// or https:// URL with a host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        # requests would turn them into an Authorization header that replaces the client's own.
        raise ValueError("--upstream must not hold credentials; clients send their own Authorization header")
    if parts.query or parts.fragment:
        raise ValueError("--upstream is the deployment's root URL, without a query or fragment")
    return url.rstrip("/")


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The client's headers as the upstream gets them."""
    items = list(headers)
    listed = {name.strip().lower() for key, value in items if key.lower() == "connection" for name in value.split(",")}
    sent = {key: value for key, value in items if key.lower() not in _NOT_SENT_UP and key.lower() not in listed}
    sent["Accept-Encoding"] = "identity"
    return sent


class Upstream:
    """Requests to one deployment; each worker thread keeps its own ``requests.Session``."""

    def __init__(self, base_url: str, timeout: float, pool_size: int = 8) -> None:
        self.base_url = checked_base_url(base_url)
        self.timeout = timeout
        self._pool_size = pool_size
        # The environment's HTTP(S)_PROXY and NO_PROXY still apply (a company proxy in front of
        # staging); .netrc does not: it would add credentials the client did not send.
        self._proxies = requests.utils.get_environ_proxies(self.base_url)
        self._local = threading.local()

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Send ``method target`` (path and query as the client wrote them) and read the whole answer."""
        url = self.base_url + target
        try:
            response = self._session().request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise UpstreamError(self._timed_out(), timeout=True) from None
        except requests.RequestException as exc:
            # A read that times out in the middle of the body comes as a ConnectionError.
            if "timed out" in str(exc):
                raise UpstreamError(self._timed_out(), timeout=True) from None
            raise UpstreamError(f"cannot reach the upstream {self.base_url}: {_reason(exc)}", timeout=False) from None
        # requests undoes a Content-Encoding the upstream used although it was asked for none; the
        # body is then sent on as it was decoded, without that header or the encoded length.
        decoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        dropped = HOP_BY_HOP | ({"content-encoding", "content-length"} if decoded else set())
        kept = [(k, v) for k, v in response.raw.headers.items() if k.lower() not in dropped]
        return Reply(response.status_code, kept, response.content)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.proxies.update(self._proxies)
            session.headers.clear()  # send the client's headers, not requests' defaults
            # Cookies belong to the clients: one client's Set-Cookie must never reach another's request.
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def _timed_out(self) -> str:
        return f"the upstream {self.base_url} did not answer within {self.timeout:g} s"


def _reason(exc: requests.RequestException) -> str:
    """Why a connection failed, in a few words (never the request's URL, which may carry a query)."""
    found = _ERRNO.search(str(exc))
    if found:
        return found.group(1).strip()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    return type(exc).__name__
