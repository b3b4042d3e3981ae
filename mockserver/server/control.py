"""Routes outside the spec: health, reset, recorded violations, and the served spec."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from mockserver.domain.store import State
from mockserver.domain.timeutil import format_timestamp
from mockserver.server.context import Mock, current_mock, log
from mockserver.server.routes import error_response, json_response
from mockserver.server.sessions import current_sessions, sessions_if_any
from mockserver.spec.errors import ApiError, BadRequest, NotFound, Unauthorized, for_status

bp = Blueprint("control", __name__)
PREFIX = "/__mock/"
SPEC_PATH = "/openapi.json"


def is_control(path: str) -> bool:
    """Whether a request path belongs to the control routes (and the inspector page) rather than to the API."""
    return path.startswith(PREFIX) or path == SPEC_PATH or path == PREFIX.rstrip("/")


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
            # Says what answers here: `mockserver contract` and `diff` recognise the mock by it.
            "service": "mockserver",
            "spec": {"title": info.get("title"), "version": info.get("version"), "source": mock.spec.source},
            "fixtures": str(mock.settings.fixtures),
            "profiles": profiles,
            "auth": "api-keys" if mock.auth.keyring else "permissive",
            "strict": mock.settings.strict,
            "violations": len(mock.violations),
            "violations_dropped": mock.violations.dropped,
            "sessions": len(current_sessions()),
        },
    )


def chosen_mock() -> Mock:
    """The mock of the session the request names (path prefix, header or cookie), or the default one."""
    sessions = sessions_if_any()
    return current_mock() if sessions is None else sessions.pick(request.environ, api=False)


@bp.post(PREFIX + "reset")
def reset() -> Response:
    """Back to the loaded fixtures; ``?empty=true``: to a state with no records at all."""
    mock = chosen_mock()
    mock.store.reset()
    empty = request.args.get("empty", "").lower() in ("1", "true", "yes")
    if empty:
        mock.store.restore(State())
    with mock.store.atomic() as state:
        profiles = len(state.profiles)
    message = "state emptied" if empty else "state reset to the loaded fixtures"
    return json_response(200, {"message": message, "profiles": profiles})


@bp.get(PREFIX + "violations")
def violations() -> Response:
    """What the mock answered against the contract so far (a CI job can assert this is empty).

    The newest 1,000 are kept; ``dropped`` counts the older ones let go. In a shared state they are
    every instance's, each naming its ``instance``.
    """
    found = chosen_mock().violations
    return json_response(200, {"violations": [v.as_dict() for v in found], "dropped": found.dropped})


@bp.delete(PREFIX + "violations")
def clear_violations() -> Response:
    chosen_mock().violations.clear()
    return json_response(200, {"violations": [], "dropped": 0})


@bp.before_request
def require_control_token() -> Response | None:
    """With ``--control-token``, every ``/__mock/`` route needs ``Authorization: Bearer <token>``.

    ``/openapi.json`` stays open: it only shows the contract, and a browser page that reads it (one
    opened by following a link) cannot add headers.
    """
    token = current_mock().settings.control_token
    if not token or not request.path.startswith(PREFIX):
        return None
    if request.headers.get("Authorization", "") != f"Bearer {token}":
        return token_refused("the control API needs Authorization: Bearer <control token>")
    return None


def token_refused(message: str) -> Response:
    """A 401 saying ``message``, which asks for the control token."""
    response = error_response(Unauthorized(message))
    response.headers["WWW-Authenticate"] = 'Bearer realm="mockserver control"'
    return response


@bp.get(PREFIX + "state")
def state() -> Response:
    """Everything the mock holds, as JSON."""
    return json_response(200, chosen_mock().store.snapshot().to_dict())


@bp.get(PREFIX + "state/counts")
def state_counts() -> Response:
    """How many records of each kind the state holds (the inspector page shows these)."""
    with chosen_mock().store.atomic() as state:
        counts = state.counts()
    return json_response(200, counts)


@bp.get(PREFIX + "state/profiles")
def state_profiles() -> Response:
    """Every profile in one line each: id, name, version, whether it is active."""
    with chosen_mock().store.atomic() as state:
        rows = [
            {"id": p["id"], "name": p["name"], "version": p["version"], "is_active": p["is_active"]}
            for p in state.profiles.values()
        ]
    return json_response(200, {"profiles": rows})


@bp.get(PREFIX + "state/profiles/<int:profile_id>")
def state_profile(profile_id: int) -> Response:
    """One profile as getAccessProfile answers it, without the API's credentials."""
    return json_response(200, chosen_mock().profiles.get(profile_id))


@bp.get(PREFIX + "snapshots")
def snapshots() -> Response:
    named = chosen_mock().store.named()
    return json_response(200, {"snapshots": [_described(name, saved) for name, saved in sorted(named.items())]})


@bp.post(PREFIX + "snapshots/<name>")
def save_snapshot(name: str) -> Response:
    """Save the whole state under a name (replacing a snapshot of that name)."""
    store = chosen_mock().store
    created_at = format_timestamp(store.clock())
    profiles = store.save_named(name, created_at)
    return json_response(201, _described(name, (created_at, profiles)))


@bp.post(PREFIX + "snapshots/<name>/restore")
def restore_snapshot(name: str) -> Response:
    saved = chosen_mock().store.restore_named(name)
    if saved is None:
        return error_response(NotFound(f"no snapshot named {name!r}", "name"))
    return json_response(200, {"message": f"state restored from snapshot {name!r}", **_described(name, saved)})


@bp.delete(PREFIX + "snapshots/<name>")
def delete_snapshot(name: str) -> Response:
    if not chosen_mock().store.delete_named(name):
        return error_response(NotFound(f"no snapshot named {name!r}", "name"))
    return json_response(200, {"message": f"snapshot {name!r} deleted"})


def _described(name: str, saved: tuple[str, int]) -> dict[str, Any]:
    created_at, profiles = saved
    return {"name": name, "created_at": created_at, "profiles": profiles}


@bp.get(PREFIX + "journal")
def journal() -> Response:
    """The request journal, oldest first; filter with ?operation_id=, ?method=, ?status=, ?after=<seq>.

    ``oldest`` and ``last`` are the seqs of the oldest entry kept and of the newest recorded, so a
    reader that polls with ``after`` knows which of the entries it holds the journal has dropped;
    ``dropped`` counts the entries dropped to stay within ``bounds`` since the journal was last cleared.
    In a shared state, the entries are every instance's (each names its ``instance``), in time order;
    ``last`` is where a poller moves its cursor (no entry at or below it appears later), and
    ``dropped`` counts this instance's drops.
    """
    args = request.args
    status = _integer_arg("status")
    after = _integer_arg("after")
    journal = chosen_mock().journal
    found = journal.listing(args.get("operation_id"), method=args.get("method"), status=status, after=after)
    listed = [e.as_dict() for e in found.entries]
    answer = {
        "entries": listed,
        "oldest": found.oldest,
        "last": found.last,
        "dropped": journal.dropped,
        "bounds": journal.bounds(),
    }
    return json_response(200, answer)


@bp.get(PREFIX + "journal/<int:seq>")
def journal_entry(seq: int) -> Response:
    """One entry with everything kept: request headers (credentials masked) and body, answer headers and body."""
    entry = chosen_mock().journal.get(seq)
    if entry is None:
        return error_response(NotFound(f"the journal holds no entry {seq} (cleared, or among the oldest dropped)"))
    return json_response(200, entry.details())


def _integer_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name}: expected an integer, got {value!r}", name) from None


@bp.delete(PREFIX + "journal")
def clear_journal() -> Response:
    chosen_mock().journal.clear()
    return json_response(200, {"entries": []})


@bp.get(SPEC_PATH)
def openapi_document() -> Response:
    return Response(current_mock().spec.json_bytes, mimetype="application/json")


def _api_error(error: ApiError) -> Response:
    # A control route that cannot do its work (a state file that cannot be written) answers in the envelope.
    log.error("%s %s %d - %s", request.method, request.path, error.status, error.message)
    return error_response(error)


def _http_error(error: HTTPException) -> Response:
    # Werkzeug's own errors (a control route called with a wrong method, say) in the envelope.
    response = error_response(for_status(error.code or 500, error.description or error.name))
    if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ApiError, _api_error)
