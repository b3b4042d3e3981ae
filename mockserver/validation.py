"""Checking requests and our own responses against the spec, with openapi-core.

This module is the one place that talks to the validator, so a faster engine can later stand
behind the same two methods with openapi-core kept as the reference.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

from openapi_core.casting.schemas.exceptions import CastError
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.deserializing.media_types.exceptions import MediaTypeDeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    SecurityValidationError,
)
from openapi_core.validation.response.exceptions import HeaderValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from mockserver.auth import CHALLENGE
from mockserver.errors import ApiError, BadRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from mockserver.schema_errors import describe, field_path, summarise
from mockserver.spec import Operation, Spec

_INTEGER = re.compile(r"[-+]?[0-9]+", re.ASCII)
# Python refuses to convert longer digit strings (a guard against slow conversions).
_MAX_DIGITS = 4300

# The spec sets allowEmptyValue on `search` and `tags` (an empty filter means no filter, as upstream).
# OpenAPI 3.1 still defines the keyword; openapi-core warns about it on every request.
warnings.filterwarnings("ignore", "Use of allowEmptyValue property is deprecated", DeprecationWarning)


@dataclass(frozen=True)
class Call:
    """A request that satisfied the contract, with typed parameters and the JSON body as sent."""

    operation: Operation
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any


class Validator:
    """Request and response validation for one spec."""

    def __init__(self, spec: Spec, max_body_bytes: int) -> None:
        self.spec = spec
        self.max_body_bytes = max_body_bytes

    def request(self, request: Request, operation: Operation, path_params: dict[str, str]) -> Call:
        """The validated call, or the ``ApiError`` that explains why the request breaks the contract."""
        integer_problems = _integer_problems(request, operation, path_params)
        body = self._body(request, operation) if operation.body_media_types else None
        result = self.spec.openapi.unmarshal_request(WerkzeugOpenAPIRequest(request))
        if result.errors or integer_problems:
            raise _request_error(result.errors, integer_problems)
        return Call(operation, dict(result.parameters.path), dict(result.parameters.query), body)

    def response_problems(self, request: Request, response: Response) -> list[str]:
        """What is wrong with a response we are about to send (empty when it keeps the contract)."""
        errors = self.spec.openapi.iter_response_errors(
            WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response)
        )
        problems: list[str] = []
        for error in errors:
            schema_errors = getattr(error.__cause__, "schema_errors", None)
            if schema_errors:
                problems.extend(": ".join(describe(se)) for se in schema_errors)
            elif isinstance(error, HeaderValidationError):
                problems.append(f"header {error.name}: {_text(error)}")
            else:
                problems.append(_text(error.__cause__ or error))
        return problems

    def _body(self, request: Request, operation: Operation) -> Any:
        """The JSON body, read within the size limit and parsed strictly (no NaN or Infinity)."""
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
            return None
        if request.mimetype not in operation.body_media_types:
            sent = request.mimetype or "no Content-Type"
            raise UnsupportedMediaType(
                f"Content-Type {sent!r} is not supported; send {', '.join(operation.body_media_types)}"
            )
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
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


def _request_error(errors: list[Exception], known: list[tuple[str, str]]) -> ApiError:
    """One error for everything wrong with a request; ``known`` are problems found before openapi-core."""
    problems = list(known)
    reported = {name for name, _ in known}
    for error in errors:
        cause = error.__cause__
        if isinstance(error, SecurityValidationError):
            return Unauthorized("authentication required", headers=dict(CHALLENGE))
        if isinstance(cause, MediaTypeNotFound):
            return UnsupportedMediaType(f"Content-Type {cause.mimetype!r} is not supported; send application/json")
        if isinstance(error, ParameterValidationError):
            if error.name not in reported:
                problems.extend(_parameter_problems(error))
        elif isinstance(cause, MediaTypeDeserializeError):
            problems.append(("body", "request body is not valid JSON"))
        elif isinstance(error, MissingRequestBodyError):
            problems.append(("body", "a request body is required"))
        elif getattr(cause, "schema_errors", None):
            problems.extend(describe(se) for se in cause.schema_errors)  # type: ignore[union-attr]
        else:
            problems.append(("request", _text(cause or error)))
    message, param = summarise(problems)
    return BadRequest(message, param)


def _parameter_problems(error: ParameterValidationError) -> list[tuple[str, str]]:
    cause = error.__cause__
    name = error.name
    if isinstance(cause, CastError):
        return [(name, f"expected {cause.type}, got {cause.value!r}")]
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        return [describe(se, prefix=name) for se in schema_errors]
    if cause is None:
        return [(field_path([], name), f"{error.location} parameter is required")]
    return [(name, _text(cause))]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _text(error: BaseException) -> str:
    # openapi-core's deserialiser errors decode the raw body when printed and fail on binary data.
    try:
        return str(error)
    except Exception:
        return error.__class__.__name__
