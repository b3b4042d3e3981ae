"""The API edge: every spec path goes through one view that routes, authenticates, validates,
dispatches on operationId and checks the answer against the spec before it leaves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response

from mockserver.domain.auth import Identity
from mockserver.server import prefer, turns
from mockserver.server.context import Mock, Violation, log
from mockserver.server.journal import (
    BODY_CAP,
    REFUSED_AUTH,
    REFUSED_CONTRACT,
    REFUSED_ROUTE,
    REFUSED_RULE,
    REFUSED_SESSION,
    Entry,
    environ_headers,
    keep,
)
from mockserver.server.logs import has_secret, log_request, public_path, public_query, requests_log
from mockserver.server.serving import half_answer, no_answer
from mockserver.spec.document import Operation, Spec, SpecError
from mockserver.spec.errors import ApiError, InternalError, MethodNotAllowed, NotFound, StoreUnavailable
from mockserver.spec.validation import Answer, Call

Handler = Callable[[Mock, Call, Identity], Answer]
# The mock a request works on (its session's, or the one it was given); raises ApiError to refuse it.
Picker = Callable[[dict[str, Any]], Mock]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Answer(status, payload, headers or {}).to_response()


def error_answer(error: ApiError) -> Answer:
    return Answer(error.status, error.body(), dict(error.headers))


def error_response(error: ApiError) -> Response:
    return error_answer(error).to_response()


def register(app: Flask, mock: Mock, is_control: Callable[[str], bool], pick: Picker) -> None:
    """Answer every request that is not for a control route here, before Flask's own routing.

    The API needs none of Flask's per-request machinery (routing, contexts, hooks), and skipping
    it is a large part of what the mock costs per request; control routes stay ordinary Flask views.
    """
    flask_wsgi = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if is_control(environ.get("PATH_INFO", "")):
            return flask_wsgi(environ, start_response)
        response = dispatch(mock, Request(environ), pick)
        fault = environ.get(turns.FAULT_KEY)
        if fault == "empty":
            return no_answer(environ, start_response)
        if fault == "truncate":
            return half_answer(response.status, response.headers, response.body, environ, start_response)
        return response(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def check_handlers(spec: Spec) -> None:
    """Refuse to start with a spec operation the mock cannot serve."""
    missing = sorted({op.canonical_id for op in spec.operations.values()} - set(HANDLERS))
    if missing:
        raise SpecError(f"{spec.source}: no mock behaviour for operation(s) {', '.join(missing)}")


class Reply:
    """An answer ready to go out: status line, headers and body, serialised once.

    A plain WSGI answer, lighter than a werkzeug Response, which the API needs none of.
    """

    __slots__ = ("status_code", "headers", "body")

    def __init__(self, answer: Answer) -> None:
        self.status_code = answer.status
        self.body = answer.body
        self.headers = [
            *answer.headers.items(),
            ("Content-Type", answer.media_type),
            ("Content-Length", str(len(self.body))),
        ]

    @property
    def status(self) -> str:
        return f"{self.status_code} {HTTP_STATUS_CODES.get(self.status_code, 'UNKNOWN').upper()}"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(self.status, self.headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]


def dispatch(mock: Mock, request: Request, pick: Picker) -> Reply:
    """Route, authenticate, validate, run the operation and check the answer."""
    arrived = time.time()
    started = time.perf_counter()
    operation = None
    delay_ms = 0
    stage: str | None = REFUSED_SESSION  # the check in progress, for the journal
    refused: ApiError | None = None
    unavailable: StoreUnavailable | None = None
    try:
        # A refused session is answered before routing, so by no operation's contract.
        mock = pick(request.environ)
        stage = REFUSED_ROUTE
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
        stage = REFUSED_CONTRACT
        # Headers straight from the environ: werkzeug's case-insensitive lookup cost more than the check.
        wanted = prefer.parse(request.environ.get("HTTP_PREFER"), request.args)
        delay_ms = wanted.delay_ms or mock.chaos.latency_ms
        if delay_ms:
            turns.must_not_delay()  # on the loop or the writes' thread: again on a thread, chaos untouched
        if wanted.fault:
            request.environ[turns.FAULT_KEY] = wanted.fault
        chaos_code = None if wanted.canned else mock.chaos.error_code(mock.spec, operation)
        if wanted.canned or chaos_code is not None:
            # An answer chosen by the client (or by chaos): a documented response with its example.
            chosen = wanted if chaos_code is None else prefer.Directives(code=chaos_code)
            answer = Answer(*prefer.canned_answer(mock.spec, operation, chosen))
            stage = None
        else:
            stage = REFUSED_AUTH
            identity = mock.auth.identify(request.environ.get("HTTP_AUTHORIZATION"), operation.schemes)
            mock.auth.authorize(identity, operation.permission)
            stage = REFUSED_CONTRACT
            call = mock.validator.request(request, operation, path_params)
            stage = REFUSED_RULE
            answer = HANDLERS[operation.canonical_id](mock, call, identity)
            stage = None
    except StoreUnavailable as error:
        # Not a refusal of the request: the shared state could not be read or written (at any step,
        # the catch-up on other processes' writes included). Every operation declares this 503, so the
        # answer is checked against the operation the path names even when it failed before routing.
        unavailable = error
        answer = error_answer(error)
        if operation is None:
            operation = _operation_of(mock, request)
    except ApiError as error:
        refused = error
        answer = error_answer(error)
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
        answer = error_answer(InternalError(f"internal error: {type(exc).__name__}"))
    if operation is not None:
        answer = _checked(mock, request, operation, answer)
    if delay_ms:
        prefer.wait(delay_ms)
    response = Reply(answer)
    duration = (time.perf_counter() - started) * 1000
    secret = has_secret(request.query_string)
    query = public_query(request.args) if secret else request.args.to_dict(flat=False)
    sent, sent_size = _sent_body(request, mock.settings.max_body_bytes)
    answered = response.body
    refused_by = stage if refused is not None else None
    failed = refused or unavailable
    mock.journal.record(
        Entry(
            method=request.method,
            path=request.path,
            query=query,
            operation_id=operation.operation_id if operation else None,
            canonical_id=operation.canonical_id if operation else None,
            status=answer.status,
            duration_ms=duration,
            refused_by=refused_by,
            error=failed.message if failed is not None else None,
            param=failed.param if failed is not None else None,
            time=arrived,
            request_headers=environ_headers(request.environ),
            request_body=keep(sent),
            request_size=sent_size,
            answer_headers=response.headers,
            answer_body=keep(answered),
            answer_size=len(answered),
        )
    )
    if requests_log.isEnabledFor(logging.INFO):
        operation_id = operation.operation_id if operation else None
        reason = failed.message if failed is not None else None
        path = public_path(request.path, query) if secret else request.full_path.rstrip("?")
        log_request(request.method, path, operation_id, response.status_code, duration, reason, mock.session)
    return response


def _operation_of(mock: Mock, request: Request) -> Operation | None:
    """The operation ``request`` names (None: no path or method of the spec)."""
    found = mock.spec.match(request.path)
    return None if found is None else found[0].operations.get(request.method)


def _sent_body(request: Request, limit: int) -> tuple[bytes, int]:
    """(the request body, as far as the journal needs it; its size in bytes).

    A body the validator read is already cached on the request; one it never read (the request was
    refused first) is read here, and one over the size limit only as far as the journal keeps.
    """
    length = request.content_length
    if not length:
        return b"", 0
    try:
        if length > limit:
            return request.stream.read(BODY_CAP), length
        request.max_content_length = limit
        data = request.get_data(cache=True)
    except Exception:  # a broken or over-long stream: the answer says so; the journal keeps the size
        return b"", length
    return data, len(data)


def _checked(mock: Mock, request: Request, operation: Operation, answer: Answer) -> Answer:
    """The answer, or in strict mode a 500 naming what broke the contract."""
    problems = mock.validator.answer_problems(request, operation, answer)
    if not problems:
        return answer
    op_id = operation.operation_id
    mock.record(Violation(op_id, request.method, request.path, answer.status, tuple(problems)))
    if not mock.settings.strict:
        return answer
    message = f"the mock's {answer.status} response to {op_id} breaks the contract: {'; '.join(problems)}"
    return error_answer(InternalError(message))


# -- one function per canonical operation ------------------------------------------------------


def _list(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.profiles.list(call.query))


def _create(mock: Mock, call: Call, who: Identity) -> Answer:
    profile = mock.profiles.create(call.body, who.name)
    return _created(mock, call, profile)


def _get(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.profiles.get(call.path["profile_id"]))


def _update(mock: Mock, call: Call, who: Identity) -> Answer:
    profile = mock.profiles.update(call.path["profile_id"], call.body, who.name)
    return Answer(200, {"access_profile": profile})


def _delete(mock: Mock, call: Call, who: Identity) -> Answer:
    mock.profiles.delete(call.path["profile_id"], who.name)
    return Answer(200, {"message": "Access profile deleted"})


def _activate(mock: Mock, call: Call, who: Identity) -> Answer:
    profile = mock.profiles.set_active(call.path["profile_id"], True, who.name)
    return Answer(200, {"access_profile": profile})


def _deactivate(mock: Mock, call: Call, who: Identity) -> Answer:
    profile = mock.profiles.set_active(call.path["profile_id"], False, who.name)
    return Answer(200, {"access_profile": profile})


def _clone(mock: Mock, call: Call, who: Identity) -> Answer:
    profile = mock.profiles.clone(call.path["profile_id"], call.body, who.name)
    return _created(mock, call, profile)


def _created(mock: Mock, call: Call, profile: dict[str, Any]) -> Answer:
    # Location stays in the path family the client used, like the 201's links.
    location = mock.spec.sibling(call.operation, "getAccessProfile").path.format(profile_id=profile["id"])
    return Answer(201, {"access_profile": profile}, {"Location": location})


def _propagate(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.propagate(call.path["profile_id"], call.body, who.name))


def _attach_roles(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.roles.attach(call.path["profile_id"], call.body, who.name))


def _detach_role(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.roles.detach(call.path["profile_id"], call.path["role_id"], who.name))


def _versions(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.history.versions(call.path["profile_id"]))


def _version(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.history.version(call.path["profile_id"], call.path["version"]))


def _profile_audit(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.history.audit_logs(call.query, call.path["profile_id"]))


def _all_audit(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.history.audit_logs(call.query))


def _user_copies(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.list_for_user(call.path["user_id"]))


def _detach_user(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.detach(call.path["user_id"], call.path["profile_id"], who.name))


def _set_override(mock: Mock, call: Call, who: Identity) -> Answer:
    path = call.path
    result = mock.copies.set_override(path["user_id"], path["profile_id"], path["budget_id"], call.body, who.name)
    return Answer(200, result)


def _delete_override(mock: Mock, call: Call, who: Identity) -> Answer:
    path = call.path
    return Answer(200, mock.copies.delete_override(path["user_id"], path["profile_id"], path["budget_id"], who.name))


def _add_key(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.add_key(call.path["user_id"], call.body, who.name))


def _user_keys(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.keys_of(call.path["user_id"]))


def _creation_policy(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.creation_policy(who.user_id))


def _delete_key(mock: Mock, call: Call, who: Identity) -> Answer:
    return Answer(200, mock.copies.delete_key(call.path["user_id"], call.path["vk_id"], who.name))


HANDLERS: dict[str, Handler] = {
    "listAccessProfiles": _list,
    "createAccessProfile": _create,
    "getAccessProfile": _get,
    "updateAccessProfile": _update,
    "deleteAccessProfile": _delete,
    "activateAccessProfile": _activate,
    "deactivateAccessProfile": _deactivate,
    "cloneAccessProfile": _clone,
    "propagateAccessProfile": _propagate,
    "attachRolesToAccessProfile": _attach_roles,
    "detachRoleFromAccessProfile": _detach_role,
    "listAccessProfileVersions": _versions,
    "getAccessProfileVersion": _version,
    "listAccessProfileAuditLogsById": _profile_audit,
    "listAccessProfileAuditLogs": _all_audit,
    "listUserAccessProfiles": _user_copies,
    "detachUserAccessProfile": _detach_user,
    "updateUserAccessProfileBudgetOverride": _set_override,
    "deleteUserAccessProfileBudgetOverride": _delete_override,
    "addUserAccessProfileVirtualKey": _add_key,
    "deleteUserAccessProfileVirtualKey": _delete_key,
    "listUserVirtualKeys": _user_keys,
    "addUserVirtualKey": _add_key,
    "getMyVirtualKeyCreationPolicy": _creation_policy,
}
