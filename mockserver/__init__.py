"""A stateful, contract-validated mock of the Bifrost Enterprise Access Profiles API.

The public names are imported on first use, so importing ``mockserver`` (as the pytest plugin
does in every test run) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ApiError": "mockserver.errors",
    "BackgroundServer": "mockserver.server",
    "FixtureError": "mockserver.fixtures",
    "Mock": "mockserver.context",
    "Settings": "mockserver.settings",
    "SettingsError": "mockserver.settings",
    "Spec": "mockserver.spec",
    "SpecError": "mockserver.spec",
    "State": "mockserver.store",
    "Store": "mockserver.store",
    "Violation": "mockserver.context",
    "create_app": "mockserver.app",
    "current_mock": "mockserver.context",
    "load_spec": "mockserver.app",
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
    from mockserver.app import create_app, load_spec
    from mockserver.context import Mock, Violation, current_mock
    from mockserver.errors import ApiError
    from mockserver.fixtures import FixtureError
    from mockserver.server import BackgroundServer
    from mockserver.settings import Settings, SettingsError
    from mockserver.spec import Spec, SpecError
    from mockserver.store import State, Store


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
