"""The fast path (jsonschema-rs) against openapi-core, the validator of record.

The fast path may say "not sure" and let openapi-core decide, but it must never accept what
openapi-core refuses, and it should not refuse what openapi-core accepts. Shadow mode runs both on
every message and records any disagreement as a violation, which fails these tests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import ADMIN_TOKEN, CANONICAL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis_config import config
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from mockserver import Settings, create_app
from mockserver.resources import bundled_api_keys
from mockserver.spec import reference
from mockserver.spec.fastcheck import for_spec

APP = create_app(Settings(api_keys=bundled_api_keys(), validation="shadow"))
MOCK = APP.extensions["mockserver"]
SPEC = MOCK.spec
FAST = for_spec(SPEC)
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP, config=config(ADMIN_TOKEN))
CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def agreement() -> Iterator[None]:
    MOCK.store.reset()
    MOCK.violations.clear()
    yield
    assert not MOCK.violations, "\n".join(map(str, MOCK.violations))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_the_same_verdict_from_both(mode: GenerationMode) -> None:
    @CHECKS
    @given(case=SCHEMA.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        MOCK.store.reset()
        case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert not MOCK.violations, "\n".join(map(str, MOCK.violations))

    check()


# -- answers: real ones, then each with one part changed at random -------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def real_answers() -> list[tuple[str, str, str, int, Any, dict[str, str]]]:
    """(operationId, method, path, status, payload, headers) of answers the mock really sends."""
    client = APP.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    calls = [
        ("GET", f"{CANONICAL}/1", None),
        ("GET", f"{CANONICAL}?limit=3", None),
        ("POST", CANONICAL, {"name": "Answers", "rate_limit": {"token_max_limit": None}}),
        ("PUT", f"{CANONICAL}/8", {"description": None}),
        ("DELETE", f"{CANONICAL}/9", None),
        ("GET", f"{CANONICAL}/999", None),
        ("PUT", f"{CANONICAL}/1", {"name": "Data science"}),
        ("POST", CANONICAL, {"tags": "x"}),
    ]
    found = []
    for method, path, body in calls:
        response = client.open(path, method=method, json=body, headers=auth)
        route, _ = SPEC.match(path.split("?")[0]) or (None, None)
        assert route is not None
        op = route.operations[method]
        headers = {k: v for k, v in response.headers.items() if k in ("Location", "WWW-Authenticate")}
        found.append((op.operation_id, method, path, response.status_code, response.json, headers))
    unauthorized = client.get(CANONICAL)
    found.append(("listAccessProfiles", "GET", CANONICAL, 401, unauthorized.json, {"WWW-Authenticate": "x"}))
    return found


ANSWERS = real_answers()


def nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes(item, (*path, index))


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> Any:
    payload = copy.deepcopy(payload)
    path = draw(st.sampled_from(list(nodes(payload))))
    if not path:
        return draw(JSON)
    parent = payload
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "delete"]))
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON)
    return payload


def reference_accepts(method: str, path: str, status: int, payload: Any, headers: dict[str, str]) -> bool:
    from mockserver.spec.validation import Answer

    request = Request(EnvironBuilder(method=method, path=path).get_environ())
    return not reference.response_problems(SPEC, request, Answer(status, payload, headers).to_response())


@pytest.mark.parametrize(
    ("op_id", "method", "path", "status", "payload", "headers"), ANSWERS, ids=lambda v: str(v)[:30]
)
def test_answers_and_their_mutations_get_the_same_verdict_from_both(
    op_id: str, method: str, path: str, status: int, payload: Any, headers: dict[str, str]
) -> None:
    op = SPEC.operations[op_id]
    assert FAST.response_ok(op, status, "application/json", headers, payload)
    assert reference_accepts(method, path, status, payload, headers)

    @CHECKS
    @given(changed=mutated(payload), drop_headers=st.booleans(), other_status=st.sampled_from([status, 202, 418]))
    def check(changed: Any, drop_headers: bool, other_status: int) -> None:
        sent_headers = {} if drop_headers else headers
        fast = FAST.response_ok(op, other_status, "application/json", sent_headers, changed)
        assert fast == reference_accepts(method, path, other_status, changed, sent_headers)

    check()
