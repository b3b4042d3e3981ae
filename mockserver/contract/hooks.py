"""The Schemathesis side of a contract run: hooks that keep it safe, a handler that collects results.

Importing this module registers them with Schemathesis for the whole process. They act only while
a ``session.Session`` is active.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

import schemathesis
from schemathesis.cli import EventHandler, handler
from schemathesis.engine import Status, events

from mockserver.contract.safety import REACHING_FLAGS, SAFE_METHODS, profile_id_of
from mockserver.contract.session import (
    ATTACH_ROLES,
    CLONE,
    CREATE,
    DELETE,
    UPDATE,
    Session,
    active,
)


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]) -> None:
    """Point changes at the run's own profiles, mark the names it sends, snapshot what an update changes.

    Once the run is stopping, no case is sent: the hook raises the interrupt in the worker thread
    that was about to send it, which Schemathesis reports as an interrupted run. This holds even
    when the interrupt raised in the main thread was lost (one raised inside a finaliser is only
    printed by Python, never propagated).
    """
    session = active()
    if session is not None:
        if session.stopping:
            raise KeyboardInterrupt
        prepare(session, case)


def prepare(session: Session, case: schemathesis.Case[Any]) -> None:
    """Change ``case`` into the request the run sends, and snapshot what an update is about to change."""
    path_parameters, body = prepared(session, case)
    for name, value in path_parameters.items():
        if case.path_parameters.get(name) is not value:
            case.path_parameters[name] = value
    if isinstance(body, dict) and isinstance(case.body, dict) and body != case.body:
        case.body.clear()
        case.body.update(body)
    operation = session.operation(case.method, case.operation.path)
    collection = session.collection_of(case.operation.path)
    if operation is not None and operation.canonical_id == UPDATE and collection is not None:
        session.remember_before(case.id, collection, case.path_parameters.get("profile_id"))


def prepared(session: Session, case: schemathesis.Case[Any]) -> tuple[dict[str, Any], Any]:
    """The path parameters and body ``case`` goes out with; ``case`` itself is left as it is.

    A change aimed at a profile the run does not own goes to one it does, names get the run's
    prefix, and an attach of roles never sets a flag that reaches beyond the run's profile.
    """
    method = case.method.upper()
    template = case.operation.path
    collection = session.collection_of(template)
    path_parameters = dict(case.path_parameters or {})
    body = copy.deepcopy(case.body) if isinstance(case.body, dict) else case.body
    if method not in SAFE_METHODS and not session.read_only:
        if collection is not None and "profile_id" in path_parameters:
            value = path_parameters["profile_id"]
            path_parameters["profile_id"] = session.ownership.retarget(value, lambda: session.anchor(collection))
        if isinstance(body, dict) and "name" in body:
            body["name"] = session.ownership.name(body["name"])
    operation = session.operation(method, template)
    if operation is not None and operation.canonical_id == ATTACH_ROLES and isinstance(body, dict):
        # Only a true flag reaches out; other values are kept, so an invalid body stays invalid.
        for flag in REACHING_FLAGS:
            if body.get(flag) is True:
                body[flag] = False
    return path_parameters, body


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    """Leave out a case the guard would refuse once prepared; the run reports it as not sent.

    Schemathesis's probes of methods a path does not define reuse a body of the operation that is
    defined there, e.g. ``PATCH .../roles`` with an attach body that sets ``is_default``. The hook
    above leaves such a body as it is (the operation is not the attach), so the guard refuses it.
    Asking the guard here, before the case is handed to a worker, keeps it out of the run without an
    error: it is recorded with the guard's reason and changes nothing in the result.
    """
    session = active()
    if session is None or session.guard is None or session.stopping:
        return True
    path_parameters, body = prepared(session, case)
    reason = session.guard.refusal(case.method, _url(session.guard.base_url, case, path_parameters), _sent(body))
    if reason is None:
        return True
    session.leave_out(reason)
    return False


def _url(base_url: str, case: schemathesis.Case[Any], path_parameters: dict[str, Any]) -> str:
    path = str(case.operation.path)
    for name, value in path_parameters.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return base_url.rstrip("/") + path


def _sent(body: Any) -> bytes | None:
    """The JSON a body is sent as (None for no body or one that is not JSON)."""
    if body is None:
        return None
    try:
        return json.dumps(body).encode()
    except (TypeError, ValueError):
        return None


STORE_UNAVAILABLE = 503
# Said once however many requests got it: the run proved nothing about them, so it is incomplete (exit 2).
STORE_UNAVAILABLE_ERROR = (
    "the deployment answered 503 (its state store could not be reached) to some requests; "
    "they were not tested: run again once it is back"
)


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case[Any], response: Any) -> None:
    """Keep track of the profiles the run creates and deletes, and of answers that tested nothing."""
    session = active()
    if session is None:
        return
    if response.status_code == STORE_UNAVAILABLE:
        session.results.add_error(STORE_UNAVAILABLE_ERROR)
    operation = session.operation(case.method, case.operation.path)
    if operation is None:
        return
    if operation.canonical_id in (CREATE, CLONE) and response.status_code == 201:
        profile_id = _created_id(response)
        if profile_id is not None:
            session.ownership.adopt(profile_id)
    elif operation.canonical_id == DELETE and 200 <= response.status_code < 300:
        deleted = profile_id_of(case.path_parameters.get("profile_id"))
        if deleted is not None:
            session.ownership.release(deleted)


@handler()
class ResultsCollector(EventHandler):  # type: ignore[type-arg]
    """Feeds every finished scenario of ``st run`` into the active session's results."""

    def __init__(self, *args: Any, **params: Any) -> None:
        pass

    def handle_event(self, ctx: Any, event: events.EngineEvent) -> None:
        session = active()
        if session is None:
            return
        results = session.results
        if isinstance(event, events.ScenarioFinished):
            record_scenario(session, event.recorder)
        elif isinstance(event, events.NonFatalError):
            results.add_error(_brief(f"{event.label}: {event.info.title}: {event.value}"))
        elif isinstance(event, events.FatalError):
            results.add_error(f"Schemathesis stopped: {event.exception}")
        elif isinstance(event, events.Interrupted):
            results.interrupted = True


def record_scenario(session: Session, recorder: Any) -> None:
    """Count the cases of one finished scenario and keep its failures."""
    results = session.results
    for node in recorder.cases.values():
        results.count_case(node.value.operation.label)
    for case_id, checks in recorder.checks.items():
        node = recorder.cases.get(case_id)
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            info = check.failure_info
            failure = info.failure
            steps = [step.curl for step in info.steps] or [info.code_sample]
            operation = node.value.operation.label if node is not None else str(failure.operation)
            results.add_failure(operation, check.name, failure.title, failure.message, "\n".join(steps))


def _brief(message: str, lines: int = 12, width: int = 300) -> str:
    """The head of a long error message (Schemathesis lists whole request bodies in some)."""
    kept = [line if len(line) <= width else line[: width - 3] + "..." for line in message.splitlines()[:lines]]
    return "\n".join(kept) + ("\n..." if len(message.splitlines()) > lines else "")


def _created_id(response: Any) -> int | None:
    try:
        profile = response.json().get("access_profile")
    except (ValueError, AttributeError):
        return None
    profile_id = profile.get("id") if isinstance(profile, dict) else None
    return profile_id if _is_int(profile_id) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
