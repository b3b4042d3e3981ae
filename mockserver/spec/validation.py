"""Checking requests and our own answers against the spec: the one seam for validation.

``fast`` (the default) asks compiled jsonschema-rs validators first (mockserver.spec.fastcheck) and
turns to openapi-core, the validator of record, whenever they are not certain; openapi-core then
decides and writes the messages. ``reference`` uses openapi-core alone. ``shadow`` runs both on
every message and reports any case where the fast path accepted what openapi-core refuses.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from mockserver.settings import ValidationMode
from mockserver.spec import fastcheck, jsontext
from mockserver.spec.document import Operation, Spec
from mockserver.spec.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_INTEGER = re.compile(r"[-+]?[0-9]+", re.ASCII)
# Python refuses to convert longer digit strings (a guard against slow conversions).
_MAX_DIGITS = 4300


@dataclass(frozen=True)
class Call:
    """A request that satisfied the contract, with typed parameters and the JSON body as sent."""

    operation: Operation
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any


@dataclass(frozen=True)
class Answer:
    """What an operation answers, before it is serialised."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    @functools.cached_property
    def body(self) -> bytes:
        """The payload serialised, once: openapi-core's check and the reply share it."""
        return jsontext.dumps(self.payload)

    def to_response(self) -> Response:
        return Response(self.body, status=self.status, headers=self.headers, mimetype=self.media_type)


class Validator:
    """Request and answer validation for one spec."""

    def __init__(
        self,
        spec: Spec,
        max_body_bytes: int,
        mode: ValidationMode = ValidationMode.FAST,
        report: Callable[[Request, str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.max_body_bytes = max_body_bytes
        self.mode = ValidationMode(mode)
        self.fast = None if self.mode is ValidationMode.REFERENCE else fastcheck.for_spec(spec)
        # Shadow mode: where to report that the fast path accepted what openapi-core refuses.
        self.report = report or (lambda request, operation_id, message: None)

    def request(self, request: Request, operation: Operation, path_params: dict[str, str]) -> Call:
        """The validated call, or the ``ApiError`` that explains why the request breaks the contract."""
        known = _integer_problems(request, operation, path_params)
        sent, body = self._body(request, operation) if operation.body_media_types else (False, None)
        verdict: Any = fastcheck.UNSURE
        if self.fast is not None and not known:
            verdict = self.fast.request(operation, path_params, request.args, body, sent)
            if isinstance(verdict, tuple) and self.mode is not ValidationMode.SHADOW:
                return Call(operation, verdict[0], verdict[1], body)
        from mockserver.spec import reference
        from mockserver.spec.errors import ApiError

        try:
            path, query = reference.check_request(self.spec, request, known)
        except ApiError as error:
            if isinstance(verdict, tuple):
                message = f"fast path accepted a request openapi-core refuses: {error}"
                self.report(request, operation.operation_id, message)
            raise
        if verdict is fastcheck.INVALID and self.mode is ValidationMode.SHADOW:
            self.report(request, operation.operation_id, "fast path refused a request openapi-core accepts")
        return Call(operation, path, query, body)

    def answer_problems(self, request: Request, operation: Operation, answer: Answer) -> list[str]:
        """What is wrong with an answer we are about to send (empty when it keeps the contract)."""
        fast_ok = self.fast is not None and self.fast.response_ok(
            operation, answer.status, answer.media_type, answer.headers, answer.payload
        )
        if fast_ok and self.mode is not ValidationMode.SHADOW:
            return []
        from mockserver.spec import reference

        problems = reference.response_problems(self.spec, request, answer.to_response())
        if self.mode is ValidationMode.SHADOW and fast_ok != (not problems):
            verdicts = ("accepted", "refuses") if fast_ok else ("refused", "accepts")
            self.report(
                request,
                operation.operation_id,
                f"fast path {verdicts[0]} a {answer.status} answer that openapi-core {verdicts[1]}: "
                f"{'; '.join(problems) or '(no problem)'}",
            )
        return problems

    def _body(self, request: Request, operation: Operation) -> tuple[bool, Any]:
        """(whether a body was sent, the JSON body), read within the size limit and parsed strictly
        (no NaN or Infinity)."""
        if (request.content_length or 0) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body is {request.content_length} bytes; the limit is {self.max_body_bytes}")
        request.max_content_length = self.max_body_bytes
        try:
            data = request.get_data(cache=True)
        except RequestEntityTooLarge:
            raise PayloadTooLarge(f"request body is over the limit of {self.max_body_bytes} bytes") from None
        if not data:
            if operation.body_required:
                raise BadRequest(f"a request body ({', '.join(operation.body_media_types)}) is required", "body")
            return False, None
        if request.mimetype not in operation.body_media_types:
            sent = request.mimetype or "no Content-Type"
            raise UnsupportedMediaType(
                f"Content-Type {sent!r} is not supported; send {', '.join(operation.body_media_types)}"
            )
        try:
            return True, json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
        except UnicodeDecodeError:
            raise BadRequest("request body is not UTF-8 text", "body") from None
        except RecursionError:
            raise BadRequest("request body is nested too deeply", "body") from None
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}", "body") from None


def _integer_problems(request: Request, operation: Operation, path_params: dict[str, str]) -> list[tuple[str, str]]:
    """Integer parameters must be plain ASCII digits.

    openapi-core converts with Python's int(), which would also take "1_0" or non-ASCII digits.
    """
    problems = []
    for location, name in operation.integer_parameters:
        raw = path_params.get(name) if location == "path" else request.args.get(name)
        if raw is None or raw == "":
            continue
        if not _INTEGER.fullmatch(raw):
            problems.append((name, f"expected integer, got {raw[:40]!r}"))
        elif len(raw) > _MAX_DIGITS:
            problems.append((name, f"integers of more than {_MAX_DIGITS} digits are not supported"))
    return problems


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value
