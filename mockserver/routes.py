"""The API edge: every spec path goes through one view that routes, authenticates, validates,
dispatches on operationId and checks the answer against the spec before it leaves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.routing import PathConverter, Rule
from werkzeug.wrappers import Response

from mockserver.auth import Identity
from mockserver.context import Mock, Violation, current_mock, log
from mockserver.errors import ApiError, InternalError, MethodNotAllowed, NotFound
from mockserver.spec import Spec, SpecError
from mockserver.validation import Call

Handler = Callable[[Mock, Call, Identity], Response]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.body(), error.headers)


class ApiPath(PathConverter):
    """Any path except the control routes', which answer their own 404 and 405."""

    regex = r"(?!__mock/|openapi\.json$)[^/].*?"


def register(app: Flask) -> None:
    """Send every request that no control route takes to ``dispatch``, whatever its method."""
    app.url_map.converters["api_path"] = ApiPath
    # A werkzeug Rule without methods accepts all of them, so unknown methods reach the spec check.
    app.url_map.add(Rule("/", endpoint="api", defaults={"path": ""}))
    app.url_map.add(Rule("/<api_path:path>", endpoint="api"))
    app.view_functions["api"] = dispatch


def check_handlers(spec: Spec) -> None:
    """Refuse to start with a spec operation the mock cannot serve."""
    missing = sorted({op.canonical_id for op in spec.operations.values()} - set(HANDLERS))
    if missing:
        raise SpecError(f"{spec.source}: no mock behaviour for operation(s) {', '.join(missing)}")


def dispatch(path: str) -> Response:
    mock = current_mock()
    started = time.perf_counter()
    operation = None
    try:
        found = mock.spec.match(request.path)
        if found is None:
            raise NotFound(f"no operation at {request.path}; /openapi.json lists the paths served here", "path")
        route, path_params = found
        operation = route.operations.get(request.method)
        if operation is None:
            raise MethodNotAllowed(
                f"{request.method} is not defined on {route.template}; allowed: {route.allow}",
                headers={"Allow": route.allow},
            )
        identity = mock.auth.identify(request.headers.get("Authorization"))
        mock.auth.authorize(identity, operation.permission)
        call = mock.validator.request(request, operation, path_params)
        response = HANDLERS[operation.canonical_id](mock, call, identity)
    except ApiError as error:
        response = error_response(error)
    except Exception as exc:  # a defect of the mock: answer in the envelope and record it
        log.exception("unhandled error in %s %s", request.method, request.path)
        mock.record(
            Violation(
                operation.operation_id if operation else None,
                request.method,
                request.path,
                500,
                (f"unhandled {type(exc).__name__}: {exc}",),
            )
        )
        response = error_response(InternalError(f"internal error: {type(exc).__name__}"))
    if operation is not None:
        response = _checked(mock, operation.operation_id, response)
    log.info(
        "%s %s %s %d %.1fms",
        request.method,
        request.full_path.rstrip("?"),
        operation.operation_id if operation else "-",
        response.status_code,
        (time.perf_counter() - started) * 1000,
    )
    return response


def _checked(mock: Mock, operation_id: str, response: Response) -> Response:
    """The response, or in strict mode a 500 naming what broke the contract."""
    problems = mock.validator.response_problems(request, response)
    if not problems:
        return response
    violation = Violation(operation_id, request.method, request.path, response.status_code, tuple(problems))
    mock.record(violation)
    if not mock.settings.strict:
        return response
    message = f"the mock's {response.status_code} response to {operation_id} breaks the contract: {'; '.join(problems)}"
    return error_response(InternalError(message))


# -- one function per canonical operation ------------------------------------------------------


def _list(mock: Mock, call: Call, who: Identity) -> Response:
    return json_response(200, mock.profiles.list(call.query))


def _create(mock: Mock, call: Call, who: Identity) -> Response:
    profile = mock.profiles.create(call.body, who.name)
    return _created(mock, call, profile)


def _get(mock: Mock, call: Call, who: Identity) -> Response:
    return json_response(200, mock.profiles.get(call.path["profile_id"]))


def _update(mock: Mock, call: Call, who: Identity) -> Response:
    profile = mock.profiles.update(call.path["profile_id"], call.body, who.name)
    return json_response(200, {"access_profile": profile})


def _delete(mock: Mock, call: Call, who: Identity) -> Response:
    mock.profiles.delete(call.path["profile_id"], who.name)
    return json_response(200, {"message": "Access profile deleted"})


def _activate(mock: Mock, call: Call, who: Identity) -> Response:
    profile = mock.profiles.set_active(call.path["profile_id"], True, who.name)
    return json_response(200, {"access_profile": profile})


def _deactivate(mock: Mock, call: Call, who: Identity) -> Response:
    profile = mock.profiles.set_active(call.path["profile_id"], False, who.name)
    return json_response(200, {"access_profile": profile})


def _clone(mock: Mock, call: Call, who: Identity) -> Response:
    profile = mock.profiles.clone(call.path["profile_id"], call.body, who.name)
    return _created(mock, call, profile)


def _created(mock: Mock, call: Call, profile: dict[str, Any]) -> Response:
    # Location stays in the path family the client used, like the 201's links.
    location = mock.spec.sibling(call.operation, "getAccessProfile").path.format(profile_id=profile["id"])
    return json_response(201, {"access_profile": profile}, {"Location": location})


HANDLERS: dict[str, Handler] = {
    "listAccessProfiles": _list,
    "createAccessProfile": _create,
    "getAccessProfile": _get,
    "updateAccessProfile": _update,
    "deleteAccessProfile": _delete,
    "activateAccessProfile": _activate,
    "deactivateAccessProfile": _deactivate,
    "cloneAccessProfile": _clone,
}
