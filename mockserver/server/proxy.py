"""``mockserver proxy``: forward every request to a real deployment and check both sides against the spec.

The mock's own validator checks the request before it goes up and the answer when it comes back.
A violation changes nothing by default: the answer carries ``X-Mockserver-Violations``, and the
violation goes to ``/__mock/violations``, the journal and the log line. ``errors`` turns a broken
answer into a 502; ``reject_invalid`` answers a broken request here instead of forwarding it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from flask import Flask, current_app, request
from werkzeug.wrappers import Request, Response

from mockserver.domain.copies import KEY_PREFIX, masked
from mockserver.server import control, inspector
from mockserver.server.app import spec_for
from mockserver.server.context import Violation, Violations
from mockserver.server.cors import EXPOSED_HEADERS, Cors
from mockserver.server.journal import Entry, Journal, environ_headers, keep
from mockserver.server.logs import log_request, public_path, public_query, requests_log
from mockserver.server.routes import error_response, json_response
from mockserver.server.traffic import check_answer, check_request
from mockserver.server.upstream import Reply, Upstream, UpstreamError, checked_base_url, forwarded_headers
from mockserver.settings import Settings, SettingsError, parse_bool
from mockserver.spec.document import Spec
from mockserver.spec.errors import ApiError, MethodNotAllowed, NotFound
from mockserver.spec.validation import Validator

VIOLATIONS_HEADER = "X-Mockserver-Violations"
MESSAGES_HEADER = "X-Mockserver-Violation-Messages"
# Headers stay well under common limits (8 KiB for a whole header block in many servers).
MESSAGES_HEADER_BYTES = 4000
# The control routes a proxy serves; the others are about the mock's state, which a proxy has none of.
PROXY_CONTROL = ("health", "violations", "journal")
ENV_PREFIX = "MOCKSERVER_PROXY_"
_KEY_VALUE = re.compile(re.escape(KEY_PREFIX).encode() + rb"[A-Za-z0-9_-]{5,}")


@dataclass(frozen=True)
class ProxyOptions:
    """What only the proxy needs: where to forward, and what to do about violations."""

    upstream: str
    errors: bool = False  # a broken answer becomes a 502
    reject_invalid: bool = False  # a broken request is answered here, not forwarded
    timeout: float = 30.0  # seconds to connect, and to wait for each read

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ProxyOptions:
        """``MOCKSERVER_PROXY_*`` variables, then explicit overrides (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, kind in (("upstream", str), ("errors", bool), ("reject_invalid", bool), ("timeout", float)):
            raw = env.get(ENV_PREFIX + name.upper())
            if raw:
                values[name] = _parse(name, raw, kind)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("upstream"):
            raise SettingsError(f"--upstream is required (or set {ENV_PREFIX}UPSTREAM)")
        options = cls(**values)
        if not options.timeout > 0:
            raise SettingsError(f"timeout: expected a number of seconds above 0, got {options.timeout}")
        try:
            return replace(options, upstream=checked_base_url(options.upstream))
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


class BadGateway(ApiError):
    """The upstream could not be reached, or (with ``errors``) its answer broke the contract."""

    status: ClassVar[int] = 502
    type: ClassVar[str] = "bad_gateway"

    def __init__(self, message: str, extra: dict[str, Any]) -> None:
        super().__init__(message)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {**super().body(), "extra_fields": self.extra}


class GatewayTimeout(BadGateway):
    status: ClassVar[int] = 504
    type: ClassVar[str] = "gateway_timeout"


@dataclass
class Proxy:
    """The per-app state of a proxy, in ``app.extensions["mockserver"]`` as a mock's is.

    The control routes it shares with the mock read ``settings``, ``spec``, ``journal`` and ``violations``.
    """

    settings: Settings
    options: ProxyOptions
    spec: Spec
    validator: Validator
    upstream: Upstream
    journal: Journal = field(default_factory=Journal)
    # The last ones only: a proxy in front of a drifting deployment runs for days.
    violations: Violations = field(default_factory=Violations)

    def record(self, violation: Violation) -> None:
        self.violations.append(violation)

    def health(self) -> dict[str, Any]:
        info = self.spec.document.get("info", {})
        return {
            "status": "ok",
            "mode": "proxy",
            "upstream": self.options.upstream,
            "spec": {"title": info.get("title"), "version": info.get("version"), "source": self.spec.source},
            "errors": self.options.errors,
            "reject_invalid": self.options.reject_invalid,
            "timeout_seconds": self.options.timeout,
            "violations": len(self.violations),
            "violations_dropped": self.violations.dropped,
        }


def create_proxy_app(settings: Settings, options: ProxyOptions) -> Flask:
    """A proxy to ``options.upstream`` that checks traffic against ``settings.spec``."""
    spec = spec_for(settings.spec)
    proxy = Proxy(
        settings=settings,
        options=options,
        spec=spec,
        validator=Validator(spec, settings.max_body_bytes, settings.validation),
        upstream=Upstream(options.upstream, options.timeout, settings.threads),
    )
    app = Flask("mockserver")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mockserver"] = proxy
    app.before_request(_proxy_control)
    control.register(app)
    inspector.register(app)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if control.is_control(environ.get("PATH_INFO", "")):
            return flask_wsgi(environ, start_response)
        return exchange(proxy, Request(environ))(environ, start_response)

    flask_wsgi = app.wsgi_app
    app.wsgi_app = wsgi  # type: ignore[method-assign]
    if settings.cors_origins:
        exposed = f"{EXPOSED_HEADERS}, {VIOLATIONS_HEADER}, {MESSAGES_HEADER}"
        app.wsgi_app = Cors(app.wsgi_app, settings.cors_origins, exposed)  # type: ignore[method-assign]
    return app


def exchange(proxy: Proxy, incoming: Request) -> Response:
    """Check the request, forward it, check the answer; journal and log the exchange."""
    started, arrived = time.perf_counter(), time.time()
    body = incoming.get_data(cache=True)
    checked = check_request(proxy.spec, proxy.validator, incoming)
    operation = checked.operation
    op_id = operation.operation_id if operation else None
    messages = [f"request: {p}" for p in checked.problems]
    if messages:
        proxy.record(Violation(op_id, incoming.method, incoming.path, None, tuple(messages)))
    forwarded = not (proxy.options.reject_invalid and checked.refusal is not None)
    error: str | None = None  # the message of an answer the proxy gave instead of the upstream's
    unreachable: str | None = None
    if not forwarded:
        assert checked.refusal is not None
        response = error_response(checked.refusal)
        error = checked.refusal.message
    else:
        try:
            headers = forwarded_headers(incoming.headers.items())
            reply = proxy.upstream.send(incoming.method, _target(incoming), headers, body)
        except UpstreamError as exc:
            kind = "upstream_timeout" if exc.timeout else "upstream_unreachable"
            extra = {"error_type": kind, "timeout": exc.timeout, "timeout_seconds": proxy.options.timeout}
            response = error_response((GatewayTimeout if exc.timeout else BadGateway)(exc.message, extra))
            error = unreachable = exc.message
        else:
            problems = check_answer(proxy.spec, proxy.validator, incoming, operation, reply)
            messages += [f"answer: {p}" for p in problems]
            response = _passed_on(reply, incoming.method, strip_cors=bool(proxy.settings.cors_origins))
            if problems:
                proxy.record(Violation(op_id, incoming.method, incoming.path, reply.status, tuple(problems)))
            if problems and proxy.options.errors:
                error = f"the upstream's {reply.status} answer to {op_id} breaks the contract: {'; '.join(problems)}"
                extra = {"error_type": "upstream_contract", "timeout": False, "upstream_status": reply.status}
                response = error_response(BadGateway(error, {**extra, "violations": problems}))
    _mark(response, messages)
    duration = (time.perf_counter() - started) * 1000
    query = public_query(incoming.args)
    answered = response.get_data()
    proxy.journal.record(
        Entry(
            method=incoming.method,
            path=incoming.path,
            query=query,
            operation_id=op_id,
            canonical_id=operation.canonical_id if operation else None,
            status=response.status_code,
            duration_ms=duration,
            refused_by=None if forwarded else checked.stage,
            error=error,
            time=arrived,
            request_headers=environ_headers(incoming.environ),
            request_body=keep(body),
            request_size=len(body),
            answer_headers=list(response.headers.items()),
            answer_body=keep(_without_key_values(answered)),
            answer_size=len(answered),
            extra={"forwarded": forwarded, "violations": messages},
        )
    )
    note = f" - {unreachable}" if unreachable else ""
    if messages:
        note += f" - {len(messages)} violation{'s' if len(messages) > 1 else ''}: {'; '.join(messages)}"
    if requests_log.isEnabledFor(logging.INFO):
        path = public_path(incoming.path, query)
        log_request(
            incoming.method,
            path,
            op_id,
            response.status_code,
            duration,
            note.removeprefix(" - ") or None,
            forwarded=forwarded,
            violations=messages,
        )
    return response


def _passed_on(reply: Reply, method: str, strip_cors: bool) -> Response:
    """The upstream's answer as it came. With CORS on, the proxy's CORS headers replace the upstream's:
    the browser talks to the proxy's origin, and two Access-Control-Allow-Origin headers are refused."""
    response = Response(reply.body, status=reply.status)
    response.headers.clear()
    for name, value in reply.headers:
        if not (strip_cors and name.lower().startswith("access-control-")):
            response.headers.add(name, value)
    if method != "HEAD" or "Content-Length" not in response.headers:
        response.headers["Content-Length"] = str(len(reply.body))
    return response


def _mark(response: Response, messages: list[str]) -> None:
    """The violations header, and as many messages as fit in a second one (all are in the journal)."""
    response.headers[VIOLATIONS_HEADER] = str(len(messages))
    if not messages:
        return
    shown = list(messages)
    while shown:
        left = len(messages) - len(shown)
        text = json.dumps(shown + ([f"{left} more: GET /__mock/violations"] if left else []))
        if len(text) <= MESSAGES_HEADER_BYTES:
            response.headers[MESSAGES_HEADER] = text
            return
        shown.pop()
    response.headers[MESSAGES_HEADER] = json.dumps([f"{len(messages)} violations: GET /__mock/violations"])


def _target(incoming: Request) -> str:
    """The path and query as the client wrote them (re-quoted when the server does not keep them)."""
    raw = incoming.environ.get("REQUEST_URI") or incoming.environ.get("RAW_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    query = incoming.query_string.decode("latin-1")
    return incoming.script_root + _quoted(incoming.path) + (f"?{query}" if query else "")


def _quoted(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/:@!$&'()*+,;=-._~")


def _without_key_values(body: bytes) -> bytes:
    """An answer as the journal keeps it: a deployment's virtual key values (its answer to adding a key
    carries one whole) shown as the API lists them, ``sk-bf-****`` and the last four characters."""
    if KEY_PREFIX.encode() not in body:
        return body
    return _KEY_VALUE.sub(lambda m: masked(m.group(0).decode("ascii")).encode("ascii"), body)


def _proxy_control() -> Response | None:
    """The proxy's ``/__mock/`` routes: health of its own; violations and journal as the mock has them."""
    refused = control.require_control_token()
    if refused is not None or not request.path.startswith(control.PREFIX):
        return refused
    name = request.path[len(control.PREFIX) :]
    proxy: Proxy = current_app.extensions["mockserver"]
    if name == "health":
        if request.method not in ("GET", "HEAD"):
            return error_response(MethodNotAllowed("use GET /__mock/health", headers={"Allow": "GET"}))
        return json_response(200, proxy.health())
    if name in PROXY_CONTROL or name == "" or name.startswith(("journal/", "inspector/")):
        return None  # the journal, violations and the inspector page (which hides the mock's state part)
    served = ", ".join([f"{control.PREFIX} (the inspector page)", *(f"{control.PREFIX}{n}" for n in PROXY_CONTROL)])
    message = f"mockserver proxy keeps no state: {request.path} is served by mockserver serve only; here: {served}"
    return error_response(NotFound(message, "path"))


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        return parse_bool(f"{ENV_PREFIX}{name.upper()}", raw)
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a number of seconds") from None
    return raw
