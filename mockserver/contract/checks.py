"""The contract's own Schemathesis checks: what the spec cannot say, one rule each.

Importing this module registers the checks for the whole process (``st run --checks all`` and
``case.call_and_validate()`` then include them). They judge only the requests of an active
``session``: the update checks compare with the profile as it was just before the
update, which the session's ``before_call`` hook fetched. A few checks send requests of their own,
once per run, to the run's own profiles or as reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import schemathesis

from mockserver.contract import rules
from mockserver.contract.safety import profile_id_of
from mockserver.contract.session import CREATE, DELETE, LIST, UPDATE, Session, active


@dataclass(frozen=True)
class Seen:
    """An answered request of one of the operations a check is about, in the active run."""

    session: Session
    collection: str
    sent: dict[str, Any]
    answer: Any  # the response body as JSON, or None

    @property
    def profile(self) -> dict[str, Any] | None:
        found = self.answer.get("access_profile") if isinstance(self.answer, dict) else None
        return found if isinstance(found, dict) else None


def seen(case: schemathesis.Case[Any], response: schemathesis.Response, canonical_id: str) -> Seen | None:
    session = active()
    if session is None:
        return None
    operation = session.operation(case.method, case.operation.path)
    collection = session.collection_of(case.operation.path)
    if operation is None or operation.canonical_id != canonical_id or collection is None:
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return Seen(session, collection, case.body if isinstance(case.body, dict) else {}, answer)


@dataclass(frozen=True)
class Update:
    """A successful update with a JSON object body: what was sent, the profile before and after."""

    session: Session
    collection: str  # the path family the update was sent on
    sent: dict[str, Any]
    before: dict[str, Any] | None  # None when the snapshot could not be taken
    after: dict[str, Any]


def updated(case: schemathesis.Case[Any], response: schemathesis.Response) -> Update | None:
    found = seen(case, response, UPDATE)
    if found is None or response.status_code != 200 or not isinstance(case.body, dict) or found.profile is None:
        return None
    return Update(found.session, found.collection, found.sent, found.session.before(case.id), found.profile)


@schemathesis.check
def update_keeps_omitted_fields(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """An update changes only the fields it sends (decision 8)."""
    update = updated(case, response)
    if update is None or update.before is None:
        return None
    changed = rules.omitted_fields_changed(update.before, update.sent, update.after, update.session.update_fields)
    if changed:
        raise AssertionError("An update changed fields it did not send: " + "; ".join(changed))
    return None


@schemathesis.check
def update_clears_rate_limit_on_null(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """``rate_limit: null`` removes the rate limit (decision 8; the seed document)."""
    update = updated(case, response)
    problem = None if update is None else rules.rate_limit_kept(update.sent, update.after)
    if problem:
        raise AssertionError(problem)
    return None


@schemathesis.check
def update_bumps_version_once(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A change bumps ``version`` by exactly one, a no-op update keeps it (decision 10)."""
    update = updated(case, response)
    if update is None or update.before is None:
        return None
    problem = rules.version_step(update.before, update.after)
    if problem:
        raise AssertionError(problem)
    return None


@schemathesis.check
def update_is_kept_in_history(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """The version a change produced can be read back, its snapshot equal to the profile (decision 10)."""
    update = updated(case, response)
    if update is None or update.before is None or update.before.get("version") == update.after.get("version"):
        return None
    profile_id, version = update.after.get("id"), update.after.get("version")
    if not isinstance(profile_id, int) or not isinstance(version, int):
        return None
    path = f"{update.collection}/{profile_id}/versions/{version}"
    answer = update.session.http.request("GET", path)
    row = answer.body.get("version") if answer.status == 200 and isinstance(answer.body, dict) else None
    problem = rules.history_problem(update.after, row) if answer.status == 200 else f"answered {answer.describe()}"
    if problem:
        raise AssertionError(f"GET {path} after the update: {problem}; expected the new version as it was answered")
    return None


@schemathesis.check
def update_refuses_oversized_lists(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """More than 100 provider configs or budgets, or 50 tags, are refused on update (decision 9).

    Generated bodies rarely get that long with valid items, so after the first successful update
    of each path family the check also sends each limit plus one to the profile just updated,
    which is one of the run's own.
    """
    found = seen(case, response, UPDATE)
    if found is None or not 200 <= response.status_code < 300:
        return None
    session = found.session
    over = rules.oversized(found.sent, session.limits)
    if over:
        raise AssertionError(f"An update with {', '.join(over)} was accepted with {response.status_code}; expected 400")
    profile_id = profile_id_of(case.path_parameters.get("profile_id"))
    if profile_id is None or not session.once(f"oversized update {found.collection}"):
        return None
    path = f"{found.collection}/{profile_id}"
    accepted = []
    for what, body in rules.oversized_lists(session.limits).items():
        answer = session.http.request("PUT", path, body=body)
        if 200 <= answer.status < 300:
            accepted.append(f"{what} (HTTP {answer.status})")
    if accepted:
        raise AssertionError(f"PUT {path} accepted {', '.join(accepted)}; expected 400 for each")
    return None


@schemathesis.check
def create_accepts_oversized_lists(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Create has no size limits (decision 9). Sent once per path family, after the first create."""
    found = seen(case, response, CREATE)
    if found is None or response.status_code != 201 or not found.session.once(f"oversized create {found.collection}"):
        return None
    session = found.session
    body = {"name": f"oversized-{len(session.ownership.created()) + 1}", **rules.oversized_create(session.limits)}
    answer = session.create(found.collection, body)
    created = answer.profile()
    if created is not None:
        session.http.request("DELETE", f"{found.collection}/{created['id']}")
    if answer.status != 201:
        raise AssertionError(
            f"POST {found.collection} with {', '.join(rules.oversized(body, session.limits))} "
            f"answered {answer.describe()}; "
            "expected 201, because only updates have size limits"
        )
    return None


@schemathesis.check
def deleted_profile_is_gone(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """After a successful delete, reading the profile answers 404 (decision 12)."""
    found = seen(case, response, DELETE)
    profile_id = profile_id_of(case.path_parameters.get("profile_id"))
    if found is None or not 200 <= response.status_code < 300 or profile_id is None:
        return None
    answer = found.session.http.request("GET", f"{found.collection}/{profile_id}")
    if answer.status != 404:
        raise AssertionError(
            f"DELETE {found.collection}/{profile_id} answered {response.status_code}, "
            f"but GET {found.collection}/{profile_id} then answered {answer.describe()}; expected 404"
        )
    return None


@schemathesis.check
def list_paging_is_consistent(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """``count``, ``total_count``, ``limit``, ``offset`` and the order of a page agree, and consecutive
    pages never repeat a profile (decision 11). After the first list of each path family the check
    also reads three small pages."""
    found = seen(case, response, LIST)
    if found is None or response.status_code != 200 or not isinstance(found.answer, dict):
        return None
    problems = rules.page_problems(case.query or {}, found.answer, found.session.spec.page_size)
    if problems:
        raise AssertionError("The page is inconsistent: " + "; ".join(problems))
    if not found.session.once(f"paging {found.collection}"):
        return None
    pages: list[list[int]] = []
    for offset in (0, 2, 4):
        query = {"limit": 2, "offset": offset}
        page = found.session.http.request("GET", found.collection, query=query).body
        if not isinstance(page, dict) or not isinstance(page.get("access_profiles"), list):
            return None  # the schema checks report a broken page
        problems = rules.page_problems(query, page, found.session.spec.page_size)
        if problems:
            raise AssertionError(f"GET {found.collection}?limit=2&offset={offset}: " + "; ".join(problems))
        pages.append([item["id"] for item in page["access_profiles"] if isinstance(item, dict) and "id" in item])
    overlap = rules.overlapping_pages(pages)
    if overlap:
        raise AssertionError(
            f"GET {found.collection}?limit=2 at offsets 0, 2 and 4: {overlap}; expected each page to continue the last"
        )
    return None


@schemathesis.check
def list_honours_filters(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every listed profile matches ``search``, ``tags`` and ``is_active`` (decision 11)."""
    found = seen(case, response, LIST)
    if found is None or response.status_code != 200 or not isinstance(found.answer, dict):
        return None
    problems = rules.filter_problems(case.query or {}, found.answer)
    if problems:
        raise AssertionError("The page lists profiles its filters exclude: " + "; ".join(problems))
    return None
