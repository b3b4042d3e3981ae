"""Per-request control of an answer, Prism's way first: ``Prefer: code=409, example=name, delay=300``.

The same directives work as query parameters (``__code``, ``__example``, ``__delay``, ``__fault``)
for clients that cannot set headers. ``fault`` is ours: ``empty`` closes the connection without an
answer, ``truncate`` sends the headers and part of the body, then closes it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.server import turns
from mockserver.spec.document import Operation, Spec
from mockserver.spec.errors import BadRequest

FAULTS = ("empty", "truncate")
MAX_DELAY_MS = 60_000
_QUERY = {"__code": "code", "__example": "example", "__delay": "delay", "__fault": "fault"}


@dataclass(frozen=True)
class Directives:
    """What a request asked for about its own answer."""

    code: int | None = None
    example: str | None = None
    delay_ms: int = 0
    fault: str | None = None

    @property
    def canned(self) -> bool:
        """Whether the answer comes from the spec's examples rather than from the mock's state."""
        return self.code is not None or self.example is not None


NONE = Directives()  # what a request without directives asks for (a frozen value, shared)


def parse(prefer: str | None, query: Mapping[str, str]) -> Directives:
    """Directives from a ``Prefer`` header and ``__``-prefixed query parameters (which win)."""
    if not prefer and not (query and any(parameter in query for parameter in _QUERY)):
        return NONE  # most requests ask for nothing: no parsing
    raw: dict[str, str] = {}
    for part in (prefer or "").replace(";", ",").split(","):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip().lower() in _QUERY.values():
            raw[name.strip().lower()] = value.strip().strip('"')
    for parameter, name in _QUERY.items():
        if parameter in query:
            raw[name] = query[parameter]
    code = _number(raw, "code", 100, 599)
    delay = _number(raw, "delay", 0, MAX_DELAY_MS)
    fault = raw.get("fault")
    if fault is not None and fault not in FAULTS:
        raise BadRequest(f"fault={fault!r} is not supported; use one of {', '.join(FAULTS)}", "Prefer")
    return Directives(code=code, example=raw.get("example") or None, delay_ms=delay or 0, fault=fault)


def wait(delay_ms: int) -> None:
    """Hold the answer back ``delay_ms`` (``delay``, or chaos latency), letting other requests run meanwhile:
    delayed answers wait at the same time, one thread each (``server.turns``)."""
    with turns.pause():
        time.sleep(delay_ms / 1000)


def canned_answer(spec: Spec, operation: Operation, wanted: Directives) -> tuple[int, Any, dict[str, str]]:
    """(status, body, headers) of a documented response, taken from the spec's examples."""
    responses = spec.responses(operation)
    if wanted.code is not None:
        status = str(wanted.code)
        if status not in responses:
            documented = ", ".join(sorted(responses))
            raise BadRequest(
                f"code={wanted.code} is not documented for {operation.operation_id}; documented: {documented}",
                "Prefer",
            )
    else:
        status = next(s for s in sorted(responses) if s.startswith("2"))
    response = spec.resolve_any(responses[status])
    media = response.get("content", {}).get("application/json", {})
    examples = {name: spec.resolve_any(example) for name, example in media.get("examples", {}).items()}
    if wanted.example is not None:
        if wanted.example not in examples:
            names = ", ".join(sorted(examples)) or "none"
            raise BadRequest(
                f"example={wanted.example!r} is not an example of the {status} answer of "
                f"{operation.operation_id}; its examples: {names}",
                "Prefer",
            )
        chosen: str | None = wanted.example
    elif examples:
        chosen = next(iter(examples))
    elif "example" in media:
        chosen = None
    else:
        raise BadRequest(f"the {status} answer of {operation.operation_id} has no example to send", "Prefer")
    body = media["example"] if chosen is None else examples[chosen]["value"]
    headers: dict[str, str] = {}
    for name, header in ((n, spec.resolve_any(h)) for n, h in response.get("headers", {}).items()):
        # A header's examples are named like the body's (the spec pairs them); else its one example.
        named = {n: spec.resolve_any(e) for n, e in header.get("examples", {}).items()}
        if named:
            headers[name] = str(named.get(chosen or "", next(iter(named.values())))["value"])
        elif "example" in header:
            headers[name] = str(header["example"])
    return int(status), body, headers


class Chaos:
    """Server-wide latency and random errors (``--latency``, ``--error-rate``, ``--seed``)."""

    def __init__(self, latency_ms: int = 0, error_rate: float = 0.0, seed: int | None = None) -> None:
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def error_code(self, spec: Spec, operation: Operation) -> int | None:
        """A documented 5xx (or else 4xx) status of ``operation`` to answer instead, ``error_rate`` of the time."""
        if not self.error_rate:
            return None
        with self._lock:
            if self._random.random() >= self.error_rate:
                return None
            responses = [status for status in spec.responses(operation) if status not in NOT_CHAOS]
            errors = sorted(s for s in responses if s.startswith("5")) or sorted(s for s in responses if s[0] == "4")
            return int(self._random.choice(errors)) if errors else None


# Statuses chaos never picks: 503 says a shared state store is down, a state of the deployment rather
# than a failure of one request (a client asks for it with Prefer: code=503). Left out, the picks of a
# given --seed stay those they were before the status was documented.
NOT_CHAOS = frozenset({"503"})


def _number(raw: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    if name not in raw:
        return None
    text = raw[name]
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name}={text!r}: expected an integer from {low} to {high}", "Prefer")
    return int(text)
