"""Where the bundled spec and fixtures live, in a source checkout or an installed wheel."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(relative: str) -> Path:
    # A wheel carries the files inside the package (see pyproject.toml); a checkout has them at the top.
    for base in (_PACKAGE / "data", _PACKAGE.parent):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return _PACKAGE.parent / relative


def bundled_spec() -> Path:
    """The OpenAPI document the mock serves by default."""
    return _locate("openapi/access-profiles.yaml")


def bundled_fixtures() -> Path:
    """The default seed data."""
    return _locate("fixtures/default.json")


def bundled_api_keys() -> Path:
    """An example API-keys file for strict authentication."""
    return _locate("fixtures/api-keys.json")


def spec_cache() -> Path:
    """Where the digests of documents that passed validation are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mockserver" / "validated-specs"
