"""Schemathesis in-process (WSGI, no socket) over the whole spec: every check, then the stateful phase.

The two path families are tested as two APIs. They alias the same resources, which Schemathesis
cannot know: a profile deleted through one family and read through the other would look like a
created resource that vanished. Their sharing one store is tested in test_http_seed.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from conftest import ADMIN_TOKEN
from hypothesis import HealthCheck, settings
from schemathesis_config import CANONICAL_PATHS, LEGACY_PATHS, config

from mockserver import Settings, create_app
from mockserver.resources import bundled_api_keys

# Strict authentication: with permissive auth any token works, which ignored_auth rightly reports.
# Shadow validation: openapi-core checks every message too, and any disagreement fails the module.
APP = create_app(Settings(api_keys=bundled_api_keys(), validation="shadow"))
MOCK = APP.extensions["mockserver"]
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP, config=config(ADMIN_TOKEN, **{"max-examples": 25}))
canonical = schema.exclude(path_regex=LEGACY_PATHS)
legacy = schema.exclude(path_regex=CANONICAL_PATHS)
STATEFUL = settings(max_examples=40, stateful_step_count=8, deadline=None, suppress_health_check=list(HealthCheck))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def no_violations() -> Iterator[None]:
    yield
    assert not MOCK.violations, "\n".join(map(str, MOCK.violations))


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    MOCK.store.reset()


@canonical.parametrize()
def test_canonical_operations_keep_the_contract(case: schemathesis.Case) -> None:
    case.call_and_validate()


@legacy.parametrize()
def test_deprecated_operations_keep_the_contract(case: schemathesis.Case) -> None:
    case.call_and_validate()


class CanonicalWorkflow(canonical.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each Hypothesis example starts from the fixtures (see docs/toolchain: S2).
        MOCK.store.reset()


class LegacyWorkflow(legacy.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        MOCK.store.reset()


TestCanonicalWorkflows = CanonicalWorkflow.TestCase
TestCanonicalWorkflows.settings = STATEFUL
TestLegacyWorkflows = LegacyWorkflow.TestCase
TestLegacyWorkflows.settings = STATEFUL
