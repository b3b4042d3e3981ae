"""Routes outside the spec: health, reset, recorded violations, and the served spec."""

from __future__ import annotations

from flask import Blueprint, Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from mockserver.context import current_mock
from mockserver.errors import for_status
from mockserver.routes import error_response, json_response

bp = Blueprint("control", __name__)
PREFIX = "/__mock/"
SPEC_PATH = "/openapi.json"


def is_control(path: str) -> bool:
    """Whether a request path belongs to the routes of this module rather than to the API."""
    return path.startswith(PREFIX) or path == SPEC_PATH


@bp.get(PREFIX + "health")
def health() -> Response:
    mock = current_mock()
    with mock.store.atomic() as state:
        profiles = len(state.profiles)
    info = mock.spec.document.get("info", {})
    return json_response(
        200,
        {
            "status": "ok",
            "spec": {"title": info.get("title"), "version": info.get("version"), "source": mock.spec.source},
            "fixtures": str(mock.settings.fixtures),
            "profiles": profiles,
            "auth": "api-keys" if mock.auth.keyring else "permissive",
            "strict": mock.settings.strict,
            "violations": len(mock.violations),
        },
    )


@bp.post(PREFIX + "reset")
def reset() -> Response:
    mock = current_mock()
    mock.store.reset()
    with mock.store.atomic() as state:
        profiles = len(state.profiles)
    return json_response(200, {"message": "state reset to the loaded fixtures", "profiles": profiles})


@bp.get(PREFIX + "violations")
def violations() -> Response:
    """What the mock answered against the contract so far (a CI job can assert this is empty)."""
    return json_response(200, {"violations": [v.as_dict() for v in current_mock().violations]})


@bp.delete(PREFIX + "violations")
def clear_violations() -> Response:
    current_mock().violations.clear()
    return json_response(200, {"violations": []})


@bp.get(PREFIX + "journal")
def journal() -> Response:
    """The request journal, oldest first; filter with ?operation_id=, ?method=, ?status=."""
    args = request.args
    status = args.get("status", type=int)
    entries = current_mock().journal.entries(args.get("operation_id"), method=args.get("method"), status=status)
    return json_response(200, {"entries": [e.as_dict() for e in entries]})


@bp.delete(PREFIX + "journal")
def clear_journal() -> Response:
    current_mock().journal.clear()
    return json_response(200, {"entries": []})


@bp.get(SPEC_PATH)
def openapi_document() -> Response:
    return Response(current_mock().spec.json_bytes, mimetype="application/json")


def _http_error(error: HTTPException) -> Response:
    # Werkzeug's own errors (a control route called with a wrong method, say) in the envelope.
    response = error_response(for_status(error.code or 500, error.description or error.name))
    if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
