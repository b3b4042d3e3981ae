"""A stateful, contract-validated mock of the Bifrost Enterprise Access Profiles API.

The public names are imported on first use, so importing ``mockserver`` (as the pytest plugin
does in every test run) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The one place the version is written: the wheel's metadata (pyproject.toml, [tool.hatch.version]),
# `mockserver --version` and CHANGELOG.md's newest heading follow it.
__version__ = "0.1.0"

_EXPORTS = {
    "ApiError": "mockserver.spec.errors",
    "BackgroundServer": "mockserver.server.serving",
    "FixtureError": "mockserver.domain.fixtures",
    "Mock": "mockserver.server.context",
    "Settings": "mockserver.settings",
    "SettingsError": "mockserver.settings",
    "Spec": "mockserver.spec.document",
    "SpecError": "mockserver.spec.document",
    "State": "mockserver.domain.store",
    "Store": "mockserver.domain.store",
    "Violation": "mockserver.server.context",
    "create_app": "mockserver.server.app",
    "current_mock": "mockserver.server.context",
    "load_spec": "mockserver.server.app",
}
__all__ = [
    "ApiError",
    "BackgroundServer",
    "FixtureError",
    "Mock",
    "Settings",
    "SettingsError",
    "Spec",
    "SpecError",
    "State",
    "Store",
    "Violation",
    "create_app",
    "current_mock",
    "load_spec",
]

if TYPE_CHECKING:
    from mockserver.domain.fixtures import FixtureError
    from mockserver.domain.store import State, Store
    from mockserver.server.app import create_app, load_spec
    from mockserver.server.context import Mock, Violation, current_mock
    from mockserver.server.serving import BackgroundServer
    from mockserver.settings import Settings, SettingsError
    from mockserver.spec.document import Spec, SpecError
    from mockserver.spec.errors import ApiError


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
