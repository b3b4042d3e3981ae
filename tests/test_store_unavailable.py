"""The 503 ``state_store_unavailable``: a shared state store that cannot be reached, as the spec declares
it, as the mock answers it whatever step raised it, and as ``mockserver contract`` takes it from a
deployment (an incomplete run, not a broken contract)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from conftest import ADMIN_TOKEN, CANONICAL, LEGACY, Api
from flask import Flask
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from mockserver import Spec
from mockserver.contract.hooks import STORE_UNAVAILABLE_ERROR
from mockserver.contract.runner import run as contract_run
from mockserver.contract.runner import settings_from
from mockserver.server import routes
from mockserver.server.context import Mock
from mockserver.server.serving import BackgroundServer
from mockserver.spec.errors import StoreUnavailable

DOWN = "the state store cannot be reached (connection refused); nothing was changed"


def test_every_operation_of_both_path_families_declares_the_503(spec: Spec) -> None:
    for operation in spec.operations.values():
        response = spec.resolve_any(spec.responses(operation)["503"])
        media = response["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/BifrostError"}, operation.operation_id
        example = media["examples"]["state_store_unavailable"]["value"]
        assert (example["status_code"], example["error"]["type"]) == (503, "state_store_unavailable")


def test_prefer_code_503_sends_the_declared_example(api: Api) -> None:
    answer = api.get(f"{CANONICAL}/1", headers={"Prefer": "code=503, example=state_store_unavailable"})
    assert answer.status_code == 503
    assert answer.json["error"]["type"] == "state_store_unavailable"  # type: ignore[index]


def test_chaos_leaves_the_503_to_prefer(make_app: Callable[..., Flask]) -> None:
    chaotic = Api(make_app(error_rate=1.0, seed=3))
    assert {chaotic.get(f"{CANONICAL}/{n}").status_code for n in range(1, 11)} == {500}


def _dispatch(mock: Mock, path: str, pick: routes.Picker, method: str = "GET") -> routes.Reply:
    environ = EnvironBuilder(path=path, method=method, headers={"Authorization": "Bearer dev"}).get_environ()
    return routes.dispatch(mock, Request(environ), pick)


def _unreachable(environ: dict[str, Any]) -> Mock:
    raise StoreUnavailable(DOWN)


@pytest.mark.parametrize("path", [f"{CANONICAL}/1", f"{LEGACY}/1/versions"])
def test_a_store_lost_while_catching_up_before_routing_is_the_checked_503(api: Api, path: str) -> None:
    """The catch-up on other processes' writes runs as the session is picked, before the path is matched:
    the answer is still the 503 of the operation the path names, checked against the spec."""
    mock = api.mock
    reply = _dispatch(mock, path, _unreachable)
    assert reply.status_code == 503
    assert b'"type":"state_store_unavailable"' in reply.body.replace(b" ", b"")
    assert DOWN.encode() in reply.body
    assert not mock.violations  # the answer kept the contract (a broken one would be recorded, and a 500)


def test_a_store_lost_in_an_operation_is_the_503_and_not_a_defect(api: Api) -> None:
    mock = api.mock

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable(DOWN)

    mock.profiles.update = lost  # type: ignore[method-assign]
    answer = api.put(f"{CANONICAL}/1", {"description": "not saved"})
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.json == {  # exactly the envelope of spec.errors, and no violation recorded
        "is_bifrost_error": False,
        "status_code": 503,
        "error": {"type": "state_store_unavailable", "message": DOWN},
        "extra_fields": {},
    }
    assert not mock.violations


def test_a_path_outside_the_spec_still_answers_the_503_unchecked(api: Api) -> None:
    reply = _dispatch(api.mock, "/nowhere", _unreachable)
    assert reply.status_code == 503 and not api.mock.violations


class _StoreDownForReads:
    """A deployment whose state store is down for reading one profile (GET .../access-profiles/ID)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.seen = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        parts = environ.get("PATH_INFO", "").rstrip("/").split("/")
        if environ["REQUEST_METHOD"] == "GET" and len(parts) == 5 and parts[-2] == "access-profiles":
            self.seen += 1
            return routes.error_response(StoreUnavailable(DOWN))(environ, start_response)
        return self.app(environ, start_response)


@pytest.mark.slow
def test_a_contract_run_takes_a_503_as_incomplete_not_as_a_contract_failure(
    make_app: Callable[..., Flask], tmp_path: Any
) -> None:
    from mockserver.resources import bundled_api_keys

    deployment = _StoreDownForReads(make_app(api_keys=bundled_api_keys()))
    with BackgroundServer(deployment) as server:
        settings = settings_from(
            {
                "base_url": server.url,
                "token": ADMIN_TOKEN,
                "operations": "getAccessProfile",
                "phases": "examples,coverage",
                "legacy_paths": False,
                "max_examples": 5,
                "seed": 1,
            },
            {},
        )
        out = io.StringIO()
        code = contract_run(settings, out=out)
    output = out.getvalue()
    assert deployment.seen > 0
    assert code == 2, output[-6000:]  # could not be completed ...
    assert STORE_UNAVAILABLE_ERROR in output
    assert "not_a_server_error" not in output  # ... and no contract failure for it
    assert "Server error" not in output
