"""The contract suite in pytest: the checks of ``mockserver contract``, on the in-process mock or a deployment.

    pytest tests/test_contract_suite.py                      # the mock, in-process (from_wsgi)
    MOCKSERVER_CONTRACT_TOKEN=... pytest tests/test_contract_suite.py --api-url https://bifrost.staging.example

Every generated case is sent with ``case.call_and_validate()``: Schemathesis's checks and the
contract's own (``mockserver.contract.checks``). As in a ``mockserver contract`` run, a change only
ever reaches a profile the suite created, names carry the run's prefix, and the suite deletes its
profiles at the end. The two path families are tested as two APIs (see test_schemathesis_app.py).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from conftest import ADMIN_TOKEN, CANONICAL
from flask import Flask
from hypothesis import HealthCheck, settings

from mockserver import Settings, Spec, create_app
from mockserver.contract import checks as _checks  # noqa: F401 - registers the contract's checks
from mockserver.contract import hooks as _hooks  # noqa: F401 - registers the hooks that keep the suite safe
from mockserver.contract.config import schemathesis_settings
from mockserver.contract.http import Http, RequestsHttp, WsgiHttp, guarded
from mockserver.contract.runner import ContractSettings, plan, preflight, settings_from
from mockserver.contract.safety import Guard, Ownership
from mockserver.contract.session import Session, activate
from mockserver.resources import bundled_api_keys, bundled_spec

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 10
STATEFUL = settings(max_examples=15, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Target:
    """What the suite tests: the in-process mock (``app``) or a deployment (``url``)."""

    app: Flask | None
    url: str | None
    authorization: str
    session: Session


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest, spec: Spec) -> Iterator[Target]:
    url = request.config.getoption("--api-url")
    app: Flask | None = None
    http: Http
    if url:
        authorization = settings_from({"base_url": url}, os.environ).authorization or ""
        http = RequestsHttp(url, authorization)
        planned = {i for _, ids in plan(spec, ContractSettings(base_url=url, authorization=authorization)) for i in ids}
        NOT_PLANNED.update(set(spec.operations) - planned)
    else:
        # Strict authentication, so that ignored_auth means something.
        app = create_app(Settings(api_keys=bundled_api_keys()))
        authorization = f"Bearer {ADMIN_TOKEN}"
        http = WsgiHttp(app, authorization)
    ownership = Ownership(max_name_length=spec.limit("CreateAccessProfileRequest", "name", "maxLength"))
    session = Session(spec, http, ownership)
    with ExitStack() as stack:
        if url:  # in-process requests do not go through requests, and change only a throwaway app
            guard = Guard(ownership, url, session.collections)
            session.guard = guard  # asked before a generated case is sent, as in a contract run
            stack.enter_context(guarded(guard, session.refuse))
        stack.enter_context(activate(session))
        before = fixture_profiles(http)
        problem = preflight(session, ContractSettings(base_url=url or "http://in-process"), io.StringIO())
        if problem is not None:
            pytest.fail(problem)  # e.g. every answer 401: never a green run
        yield Target(app, url, authorization, session)
        cleanup = session.cleanup()
        assert cleanup.left == (), cleanup.left
        assert session.refusals == []
        if app is not None:
            assert fixture_profiles(http) == before
            assert list(app.extensions["mockserver"].violations) == []


def fixture_profiles(http: Http) -> list[Any]:
    return [http.request("GET", f"{CANONICAL}/{i}").body for i in range(1, 11)]


@pytest.fixture(scope="module")
def contract_schema(target: Target, spec: Spec) -> Any:
    config = schemathesis_settings(spec)
    config["headers"] = {"Authorization": target.authorization}
    config["generation"] = {**config["generation"], "max-examples": MAX_EXAMPLES}
    # The coverage phase sends hundreds of cases per operation; `mockserver contract` runs it.
    config["phases"] = {"coverage": {"enabled": False}}
    if target.app is not None:
        return schemathesis.openapi.from_wsgi("/openapi.json", target.app, config=schemathesis.Config.from_dict(config))
    schema = schemathesis.openapi.from_path(bundled_spec(), config=schemathesis.Config.from_dict(config))
    schema.config.update(base_url=target.url)
    return schema


# Filters go on the lazy schema: it replaces those of the schema the fixture returns.
CANONICAL_ONLY = {"operation_id_regex": "Legacy$"}
DEPRECATED_ONLY = {"operation_id_regex": "^(?!.*Legacy$)"}
# Against a deployment, the operations a `mockserver contract` run never plans (changes to real
# users' copies and keys, which the guard can only refuse); the target fixture fills it in.
NOT_PLANNED: set[str] = set()


def not_planned(ctx: Any) -> bool:
    return ctx.operation.definition.raw.get("operationId") in NOT_PLANNED  # type: ignore[no-any-return]


canonical = schemathesis.pytest.from_fixture("contract_schema").exclude(**CANONICAL_ONLY).exclude(not_planned)
deprecated = schemathesis.pytest.from_fixture("contract_schema").exclude(**DEPRECATED_ONLY).exclude(not_planned)


@canonical.parametrize()
def test_canonical_operations_keep_the_contract(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()


@deprecated.parametrize()
def test_deprecated_operations_keep_the_contract(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()


@pytest.mark.parametrize("deprecated_family", [False, True], ids=["canonical", "deprecated"])
def test_workflows_through_the_links_keep_the_contract(
    contract_schema: Any, target: Target, deprecated_family: bool
) -> None:
    if target.app is None:
        pytest.skip("against a deployment, `mockserver contract` runs the workflows (docs/toolchain.md S2)")
    app, session = target.app, target.session
    family = contract_schema.exclude(**(DEPRECATED_ONLY if deprecated_family else CANONICAL_ONLY))

    class Workflow(family.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each Hypothesis example starts from the fixtures (docs/toolchain.md S2); the suite's
            # profiles went with the reset.
            app.extensions["mockserver"].store.reset()
            session.forget()

    Workflow.run(settings=STATEFUL)
