"""``/__mock/sessions``: list, create (with its chaos), describe and delete sessions, and the links
that put a browser in a session (a cookie) or take it out.

With ``--control-token``, everything here needs the token except ``enter`` for a session that
exists already and ``leave``: a browser following a link cannot send the token, and entering a
session only chooses a state to work on (its API requests still need the API's own credentials).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, redirect, request
from werkzeug.wrappers import Response

from mockserver.server import control
from mockserver.server.prefer import MAX_DELAY_MS
from mockserver.server.routes import error_response, json_response
from mockserver.server.sessions import CHAOS_FIELDS, COOKIE, HEADER, check_name, current_sessions
from mockserver.spec.errors import BadRequest, NotFound

bp = Blueprint("sessions", __name__)
SESSIONS = control.PREFIX + "sessions"
_OPEN = {"sessions.enter", "sessions.leave"}  # endpoints a browser reaches by a link, without the token


@bp.before_request
def require_control_token() -> Response | None:
    if request.endpoint in _OPEN:
        return None
    return control.require_control_token()


@bp.get(SESSIONS)
def list_sessions() -> Response:
    sessions = current_sessions()
    return json_response(
        200,
        {
            "sessions": [sessions.describe(s) for s in sessions.all()],
            "max_sessions": sessions.max_sessions,
            "session_ttl": sessions.ttl,
        },
    )


@bp.get(SESSIONS + "/<name>")
def get_session(name: str) -> Response:
    sessions = current_sessions()
    session = sessions.get(check_name(name, "name"))
    if session is None:
        return error_response(NotFound(f"no session named {name!r}", "name"))
    return json_response(200, sessions.describe(session))


@bp.put(SESSIONS + "/<name>")
def put_session(name: str) -> Response:
    """Create a session, or set the chaos of one (the server's chaos for every field not sent)."""
    chosen = _chaos(request.get_data())
    sessions = current_sessions()
    session, created = sessions.create(check_name(name, "name"), chosen)
    return json_response(201 if created else 200, sessions.describe(session))


@bp.delete(SESSIONS + "/<name>")
def delete_session(name: str) -> Response:
    """Drop a session: its state, history, journal and snapshots (in the state file too)."""
    if not current_sessions().delete(check_name(name, "name")):
        return error_response(NotFound(f"no session named {name!r}", "name"))
    return json_response(200, {"message": f"session {name!r} deleted"})


@bp.get(SESSIONS + "/<name>/enter")
def enter(name: str) -> Response:
    """Set the session cookie of this browser (creating the session needs the control token)."""
    sessions = current_sessions()
    session = sessions.get(check_name(name, "name"))
    if session is None:
        if control.require_control_token() is not None:
            return control.token_refused(
                f"there is no session {name!r} yet, and creating one needs the control token: create it with "
                f"PUT /__mock/sessions/{name} and Authorization: Bearer <control token>, then open this link again"
            )
        session, _ = sessions.create(name, {})
    response = _then(
        {
            "message": f"this browser now works in session {name!r}: its requests without an {HEADER} header "
            f"use that state; {SESSIONS}/{name}/leave goes back to the default state",
            "session": sessions.describe(session),
        }
    )
    response.set_cookie(COOKIE, name, path="/", httponly=True, samesite="Lax")
    return response


@bp.get(SESSIONS + "/<name>/leave")
def leave(name: str) -> Response:
    """Clear the session cookie of this browser (the session itself stays)."""
    response = _then({"message": "this browser works in the default state again; the session is kept"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax")
    return response


def _then(payload: dict[str, Any]) -> Response:
    """A 303 to ``?next=`` (a path on this mock), or else ``payload``."""
    target = request.args.get("next")
    if target is None:
        return json_response(200, payload)
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        raise BadRequest(f"next={target!r}: expected a path on this mock, such as /docs", "next")
    return redirect(target, 303)


def _chaos(raw: bytes) -> dict[str, Any]:
    """The chaos a PUT body chooses: ``{"latency_ms": 0..60000, "error_rate": 0..1, "seed": int | null}``."""
    if not raw.strip():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest('expected a JSON object such as {"latency_ms": 200, "error_rate": 0.1, "seed": 7}', "body")
    unknown = sorted(set(body) - set(CHAOS_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; a session chooses {', '.join(CHAOS_FIELDS)}", unknown[0])
    latency = body.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= MAX_DELAY_MS:
        raise BadRequest(f"expected an integer from 0 to {MAX_DELAY_MS}, got {latency!r}", "latency_ms")
    rate = body.get("error_rate", 0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise BadRequest(f"expected a number from 0 to 1, got {rate!r}", "error_rate")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest(f"expected an integer or null, got {seed!r}", "seed")
    return dict(body)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
