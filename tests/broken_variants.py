"""Deliberately broken variants of the mock, each with exactly one deviation from the contract.

``mockserver contract`` must fail against every one of them, naming the check in ``caught_by``.
Each variant wraps or patches an app built by ``create_app`` with strict authentication, so
``ignored_auth`` means something; ``any-credential-accepted`` is the one about authentication.

``python tests/broken_variants.py NAME`` serves variant NAME on a free loopback port and prints
``listening on URL`` like ``mockserver serve``.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from werkzeug.wrappers import Request, Response

from mockserver import Settings, create_app
from mockserver.resources import bundled_api_keys, bundled_spec
from mockserver.server.serving import serve
from mockserver.spec.errors import BadRequest

ADMIN_TOKEN = "bf-mgmt-ci-admin-7d1e4b"  # fixtures/api-keys.json
PROFILE_PATH = re.compile(r"^/api/(governance/)?access-profiles/[^/]+")
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Variant:
    name: str
    deviation: str
    caught_by: str  # the check whose failure names the broken rule (for SPEC_KEEPING: none, contract passes)
    contract_args: tuple[str, ...]  # the phases and operations that expose it (or that it concerns)
    build: Callable[[], Wsgi]
    diff_step: str = ""  # the title of a tour step whose answers `mockserver diff` finds different


def strict_app(**settings: Any) -> Flask:
    return create_app(Settings(api_keys=bundled_api_keys(), **settings))


def patched(method: str, wrap: Callable[[Any, Any], Callable[..., Any]]) -> Callable[[], Wsgi]:
    """A strict app whose ``Profiles.<method>`` is replaced by ``wrap(original, profiles)``."""

    def build() -> Wsgi:
        app = strict_app()
        profiles = app.extensions["mockserver"].profiles
        setattr(profiles, method, wrap(getattr(profiles, method), profiles))
        return app  # type: ignore[return-value]

    return build


def answered(change: Callable[[Request, Response], None]) -> Callable[[], Wsgi]:
    """A strict app whose answers pass through ``change`` after the mock checked them."""

    def build() -> Wsgi:
        app = strict_app()

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            request = Request(environ)
            response = Response.from_app(app, environ)
            change(request, response)
            return response(environ, start_response)

        return wsgi

    return build


# -- the deviations --------------------------------------------------------------------------------


def _drop_updated_at(request: Request, response: Response) -> None:
    data = response.get_json(silent=True)
    if not isinstance(data, dict):
        return
    profiles = [data.get("access_profile")] + list(data.get("access_profiles") or [])
    for profile in profiles:
        if isinstance(profile, dict):
            profile.pop("updated_at", None)
    response.set_data(json.dumps(data))


def _server_error_for_unknown_ids(request: Request, response: Response) -> None:
    if response.status_code == 404 and PROFILE_PATH.match(request.path):
        response.status_code = 500
        response.set_data(
            json.dumps(
                {
                    "is_bifrost_error": False,
                    "status_code": 500,
                    "error": {"type": "internal", "message": "record not found"},
                    "extra_fields": {},
                }
            )
        )


def _anonymous_is_admin() -> Wsgi:
    app = strict_app()

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("HTTP_AUTHORIZATION", f"Bearer {ADMIN_TOKEN}")
        return app(environ, start_response)  # type: ignore[no-any-return]

    return wsgi


def hiding_the_health_route(app: Wsgi) -> Wsgi:
    """``app`` behind a layer that answers 404 for the mock's own routes, as a gateway in front of it would."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/__mock/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        return app(environ, start_response)

    return wsgi


def _any_credential_is_admin() -> Wsgi:
    """A permissive mock that does not say it is the mock: a deployment that accepts any credential."""
    return hiding_the_health_route(create_app(Settings()))  # type: ignore[arg-type]


def _without_update_limits() -> Wsgi:
    """The mock enforces the update limits through the spec's maxItems: serve a spec without them."""
    document = yaml.safe_load(bundled_spec().read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    for field in ("tags", "budgets", "provider_configs"):
        schemas["UpdateAccessProfileRequest"]["properties"][field].pop("maxItems")
    schemas["UpdateProviderConfig"]["allOf"][1]["properties"]["budgets"].pop("maxItems")
    spec = Path(tempfile.mkdtemp(prefix="variant-")) / "access-profiles.yaml"
    spec.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return strict_app(spec=spec)  # type: ignore[return-value]


def _ignore_null_rate_limit(original: Any, profiles: Any) -> Callable[..., Any]:
    def update(profile_id: int, body: Mapping[str, Any], actor: str) -> Any:
        kept = {k: v for k, v in body.items() if not (k == "rate_limit" and v is None)}
        return original(profile_id, kept, actor)

    return update


def _keep_version(original: Any, profiles: Any) -> Callable[..., Any]:
    def update(profile_id: int, body: Mapping[str, Any], actor: str) -> Any:
        before = profiles.get(profile_id)["access_profile"]["version"]
        result = original(profile_id, body, actor)
        if result["version"] != before:
            result = {**result, "version": before}
            with profiles.store.atomic() as state:
                state.profiles[profile_id] = result
        return result

    return update


def _reset_omitted_tags(original: Any, profiles: Any) -> Callable[..., Any]:
    def update(profile_id: int, body: Mapping[str, Any], actor: str) -> Any:
        return original(profile_id, {"tags": [], **body}, actor)

    return update


def _delete_nothing(original: Any, profiles: Any) -> Callable[..., Any]:
    def delete(profile_id: int, actor: str) -> None:
        profiles.get(profile_id)  # still 404 for an unknown id

    return delete


def _limit_tags_on_create(original: Any, profiles: Any) -> Callable[..., Any]:
    def create(body: Mapping[str, Any], actor: str) -> Any:
        if len(body.get("tags") or []) > 50:
            raise BadRequest(f"tags: expected at most 50 items, got {len(body['tags'])}", "tags")
        return original(body, actor)

    return create


def _ignore_offset(original: Any, profiles: Any) -> Callable[..., Any]:
    def list_(query: Mapping[str, Any]) -> Any:
        page = original({**query, "offset": 0})
        return {**page, "offset": max(query.get("offset") or 0, 0)}

    return list_


def _count_everything(original: Any, profiles: Any) -> Callable[..., Any]:
    def list_(query: Mapping[str, Any]) -> Any:
        page = original(query)
        return {**page, "count": page["total_count"]}

    return list_


def _ignore_search(original: Any, profiles: Any) -> Callable[..., Any]:
    def list_(query: Mapping[str, Any]) -> Any:
        return original({**query, "search": None})

    return list_


def _history_without_changes() -> Wsgi:
    """Versions are read back from the state as the fixtures left it: changes never reach history."""
    app = strict_app()
    mock = app.extensions["mockserver"]
    original = mock.history.version

    def version(profile_id: int, number: int) -> Any:
        found = original(profile_id, number)
        snapshot = json.loads(found["version"]["snapshot"])
        if snapshot.get("version", 1) > 1:  # a version a change produced: answer the first one instead
            return original(profile_id, 1)
        return found

    mock.history.version = version
    return app  # type: ignore[return-value]


def _duplicate_name_is_400(request: Request, response: Response) -> None:
    """The name clash of create, update and clone answered as a validation error (the spec lists 400 too)."""
    data = response.get_json(silent=True)
    error = data.get("error") if isinstance(data, dict) else None
    if response.status_code == 409 and isinstance(error, dict) and error.get("param") == "name":
        response.status_code = 400
        response.set_data(json.dumps({**data, "status_code": 400, "error": {**error, "type": "invalid_request"}}))


def _not_found_renamed(request: Request, response: Response) -> None:
    """A profile that does not exist is a 404 as before, with another word in ``error.type``."""
    data = response.get_json(silent=True)
    error = data.get("error") if isinstance(data, dict) else None
    if response.status_code == 404 and isinstance(error, dict) and PROFILE_PATH.match(request.path):
        response.set_data(json.dumps({**data, "error": {**error, "type": "profile_not_found"}}))


def _bump_version_on_activate(original: Any, profiles: Any) -> Callable[..., Any]:
    def set_active(profile_id: int, active: bool, actor: str) -> Any:
        before = profiles.get(profile_id)["access_profile"]
        result = original(profile_id, active, actor)
        if result["is_active"] != before["is_active"]:
            result = {**result, "version": result["version"] + 1}
            with profiles.store.atomic() as state:
                state.profiles[profile_id] = result
        return result

    return set_active


def _forget_budget_ids(original: Any, profiles: Any) -> Callable[..., Any]:
    """Budgets sent with the id of a stored budget become new ones (fresh id, usage reset)."""

    def without_ids(budgets: Any) -> Any:
        return [{k: v for k, v in b.items() if k != "id"} if isinstance(b, dict) else b for b in budgets]

    def update(profile_id: int, body: Mapping[str, Any], actor: str) -> Any:
        changed = dict(body)
        if isinstance(changed.get("budgets"), list):
            changed["budgets"] = without_ids(changed["budgets"])
        return original(profile_id, changed, actor)

    return update


def _phases(phases: str, operations: str, *extra: str) -> tuple[str, ...]:
    return ("--phases", phases, "--operations", operations, "--no-legacy-paths", *extra)


VARIANTS = [
    Variant(
        "field-missing",
        "answers lack the profile's updated_at",
        "response_schema_conformance",
        _phases("examples", "getAccessProfile"),
        answered(_drop_updated_at),
        diff_step="read it back",
    ),
    Variant(
        "rate-limit-null-ignored",
        "update ignores rate_limit: null",
        "update_clears_rate_limit_on_null",
        _phases("examples", "updateAccessProfile"),
        patched("update", _ignore_null_rate_limit),
        diff_step="rate_limit: null removes the rate limit",
    ),
    Variant(
        "size-limits-not-enforced",
        "update accepts more than 50 tags, 100 budgets, 100 provider configs",
        "update_refuses_oversized_lists",
        _phases("examples", "updateAccessProfile"),
        _without_update_limits,
        diff_step="51 tags on update: 400, param tags",
    ),
    Variant(
        "server-error-on-unknown-id",
        "an unknown profile id answers 500 instead of 404",
        "not_a_server_error",
        _phases("fuzzing", "getAccessProfile", "--max-examples", "10", "--seed", "1"),
        answered(_server_error_for_unknown_ids),
        diff_step="an id no profile has: 404",
    ),
    Variant(
        "no-401-without-credentials",
        "a request without credentials is served as the admin",
        "ignored_auth",
        _phases("examples", "listAccessProfiles"),
        _anonymous_is_admin,
        diff_step="no credentials: 401",
    ),
    Variant(
        "any-credential-accepted",
        "any credential is accepted as an admin, and /__mock/health is not there to say it is the mock",
        "ignored_auth",
        _phases("examples,coverage,fuzzing", "getAccessProfile", "--max-examples", "5", "--seed", "1"),
        _any_credential_is_admin,
        diff_step="a key the server does not know: 401",
    ),
    Variant(
        "version-not-bumped",
        "update changes the profile but keeps its version",
        "update_bumps_version_once",
        _phases("examples", "updateAccessProfile"),
        patched("update", _keep_version),
        diff_step="update the description only: the rest is kept, version 2",
    ),
    Variant(
        "delete-does-not-delete",
        "delete answers 200 and keeps the profile",
        "deleted_profile_is_gone",
        _phases("examples", "deleteAccessProfile"),
        patched("delete", _delete_nothing),
        diff_step="read the deleted profile: 404",
    ),
    Variant(
        "update-resets-omitted-tags",
        "update empties the tags when the body leaves them out",
        "update_keeps_omitted_fields",
        _phases("examples", "updateAccessProfile"),
        patched("update", _reset_omitted_tags),
        diff_step="update the description only: the rest is kept, version 2",
    ),
    Variant(
        "create-limits-tags",
        "create refuses more than 50 tags",
        "create_accepts_oversized_lists",
        _phases("examples", "createAccessProfile"),
        patched("create", _limit_tags_on_create),
        diff_step="create with 51 tags: 201 (create has no size limits)",
    ),
    Variant(
        "paging-ignores-offset",
        "every page starts at the first profile",
        "list_paging_is_consistent",
        _phases("examples", "listAccessProfiles"),
        patched("list", _ignore_offset),
        diff_step="pages of two: the second one",
    ),
    Variant(
        "count-is-total",
        "count reports total_count instead of the profiles on the page",
        "list_paging_is_consistent",
        _phases("examples", "listAccessProfiles"),
        patched("list", _count_everything),
        diff_step="pages of two: the second one",
    ),
    Variant(
        "history-not-kept",
        "a change's new version reads back as the profile's first version",
        "update_is_kept_in_history",
        _phases("examples", "updateAccessProfile"),
        _history_without_changes,
        diff_step="version 2",
    ),
    Variant(
        "search-ignored",
        "the list ignores search",
        "list_honours_filters",
        _phases("examples", "listAccessProfiles"),
        patched("list", _ignore_search),
        diff_step="the run's profiles, in ascending id order",
    ),
]
BY_NAME = {variant.name: variant for variant in VARIANTS}

# Variants that keep the spec and every rule `mockserver contract` checks, but behave otherwise than
# the mock: the contract run passes (with the operations they concern), and `mockserver diff` does not.
SPEC_KEEPING = [
    Variant(
        "duplicate-name-is-400",
        "a name in use is refused with 400 invalid_request instead of 409 conflict",
        "",
        _phases(
            "examples,fuzzing,stateful",
            "createAccessProfile,updateAccessProfile,cloneAccessProfile",
            "--max-examples",
            "5",
            "--seed",
            "1",
        ),
        answered(_duplicate_name_is_400),
        diff_step="create with a name in use: 409, param name",
    ),
    Variant(
        "not-found-type-renamed",
        "an unknown profile is a 404 with error.type profile_not_found instead of not_found",
        "",
        _phases(
            "examples,coverage,fuzzing", "getAccessProfile,deleteAccessProfile", "--max-examples", "5", "--seed", "1"
        ),
        answered(_not_found_renamed),
        diff_step="an id no profile has: 404",
    ),
    Variant(
        "activate-bumps-version",
        "activate and deactivate bump the version",
        "",
        _phases(
            "examples,stateful",
            "createAccessProfile,getAccessProfile,updateAccessProfile,activateAccessProfile,deactivateAccessProfile",
            "--max-examples",
            "5",
            "--seed",
            "1",
        ),
        patched("set_active", _bump_version_on_activate),
        diff_step="deactivate: is_active false, version unchanged",
    ),
    Variant(
        "budget-ids-not-kept",
        "an update gives every budget a new id, so a kept budget's usage starts again from 0",
        "",
        _phases("examples,fuzzing", "updateAccessProfile", "--max-examples", "5", "--seed", "1"),
        patched("update", _forget_budget_ids),
        diff_step="budgets sent with the id of a stored one keep that budget (id, usage, last reset); others are new",
    ),
]
ALL_BY_NAME = {variant.name: variant for variant in [*VARIANTS, *SPEC_KEEPING]}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ALL_BY_NAME:
        print(f"usage: broken_variants.py {{{','.join(ALL_BY_NAME)}}}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _interrupt)  # stop like `mockserver serve` does
    serve(ALL_BY_NAME[argv[0]].build(), "127.0.0.1", 0, 8, announce=lambda m: print(m, flush=True))
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
