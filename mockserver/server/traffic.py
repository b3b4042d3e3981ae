"""What the spec says about traffic that passes through the proxy: one request, one upstream answer.

The mock's own checks, in the mock's order (route, credentials, the request against the spec),
except that every problem is kept: the proxy flags them all and, with ``reject_invalid``, answers
the first as the mock would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from mockserver.domain.auth import Authenticator
from mockserver.server.journal import REFUSED_AUTH, REFUSED_CONTRACT, REFUSED_ROUTE
from mockserver.server.upstream import Reply
from mockserver.spec.document import Operation, Spec
from mockserver.spec.errors import ApiError, MethodNotAllowed, NotFound, Unauthorized
from mockserver.spec.validation import Answer, Validator


@dataclass
class RequestCheck:
    """What the spec says about one request."""

    operation: Operation | None = None
    problems: list[str] = field(default_factory=list)
    refusal: ApiError | None = None  # the answer the mock would give it: its first failing check's
    stage: str | None = None  # that check, as the journal names it

    def refuse(self, error: ApiError, stage: str) -> None:
        self.problems.append(error.message)
        if self.refusal is None:
            self.refusal, self.stage = error, stage


def check_request(spec: Spec, validator: Validator, request: Request) -> RequestCheck:
    """Route, credentials, then the request against the spec."""
    checked = RequestCheck()
    found = spec.match(request.path)
    if found is None:
        checked.refuse(NotFound(f"no operation at {request.path} in the spec", "path"), REFUSED_ROUTE)
        return checked
    route, path_params = found
    operation = route.operations.get(request.method)
    if operation is None:
        message = f"{request.method} is not defined on {route.template}; allowed: {route.allow}"
        checked.refuse(MethodNotAllowed(message, headers={"Allow": route.allow}), REFUSED_ROUTE)
        return checked
    checked.operation = operation
    credentials = _credentials_problem(request.headers.get("Authorization"), operation.schemes)
    if credentials is not None:
        checked.refuse(credentials, REFUSED_AUTH)
    try:
        validator.request(request, operation, path_params)
    except Unauthorized as error:
        if credentials is None:  # openapi-core checks that credentials are present, too
            checked.refuse(error, REFUSED_AUTH)
    except ApiError as error:
        checked.refuse(error, REFUSED_CONTRACT)
    return checked


def check_answer(
    spec: Spec, validator: Validator, request: Request, operation: Operation | None, reply: Reply
) -> list[str]:
    """What is wrong with the upstream's answer (nothing can be said of one to an unknown operation)."""
    if operation is None:
        return []
    documented = _documented(spec, operation, reply.status)
    media_type = (reply.header("Content-Type") or "").partition(";")[0].strip().lower()
    if not reply.body:
        if documented is None:
            return [f"status {reply.status} is not documented for {operation.operation_id}"]
        return [f"the {reply.status} answer has no body; the spec documents a JSON body"] if documented else []
    try:
        payload = json.loads(reply.body)
    except (ValueError, RecursionError):
        kind = media_type or "no Content-Type"
        return [f"the {reply.status} answer is not JSON ({kind}, {len(reply.body)} bytes)"]
    # Header names are matched without regard to case, whatever case the upstream wrote them in.
    headers: Any = Headers(reply.headers)
    return validator.answer_problems(request, operation, Answer(reply.status, payload, headers, media_type))


# Permissive: it checks only the scheme; one for every request, so its cache of headers seen works.
_PERMISSIVE = Authenticator()


def _credentials_problem(authorization: str | None, schemes: tuple[str, ...]) -> Unauthorized | None:
    """Whether the request carries credentials of a scheme the operation accepts (the upstream judges them)."""
    try:
        _PERMISSIVE.identify(authorization, schemes)
    except Unauthorized as error:
        return error
    return None


def _documented(spec: Spec, operation: Operation, status: int) -> bool | None:
    """Whether the spec documents a body for this status (None: it does not document the status)."""
    responses = spec.responses(operation)
    found = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
    return None if found is None else bool(spec.resolve_any(found).get("content"))
