"""openapi-core, the validator of record: the slow, complete path that also explains errors.

Imported on first use (it is the costly import of the package), and used whenever the fast path is
not certain a message keeps the contract, and for every message in ``reference`` and ``shadow`` mode.
"""

from __future__ import annotations

import warnings
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
from werkzeug.wrappers import Request, Response

from mockserver.spec.document import Spec
from mockserver.spec.errors import CHALLENGE, ApiError, BadRequest, Unauthorized, UnsupportedMediaType
from mockserver.spec.messages import describe, field_path, summarise

# The spec sets allowEmptyValue on `search` and `tags` (an empty filter means no filter, as upstream).
# OpenAPI 3.1 still defines the keyword; openapi-core warns about it on every request.
warnings.filterwarnings("ignore", "Use of allowEmptyValue property is deprecated", DeprecationWarning)


def check_request(spec: Spec, request: Request, known: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Typed (path, query) parameters, or the ``ApiError`` for everything wrong with the request."""
    result = spec.openapi.unmarshal_request(WerkzeugOpenAPIRequest(request))
    if result.errors or known:
        raise _request_error(result.errors, known)
    return dict(result.parameters.path), dict(result.parameters.query)


def response_problems(spec: Spec, request: Request, response: Response) -> list[str]:
    """What is wrong with a response (empty when it keeps the contract)."""
    errors = spec.openapi.iter_response_errors(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
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


def _text(error: BaseException) -> str:
    # openapi-core's deserialiser errors decode the raw body when printed and fail on binary data.
    try:
        return str(error)
    except Exception:
        return error.__class__.__name__
