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


def bundled_validations() -> Path:
    """Validation records of the bundled spec (see ``Spec.validation_record``), one per line."""
    return _locate("openapi/validated.txt")


def known_validations() -> frozenset[str]:
    """The records in ``bundled_validations()``; none when the file is missing."""
    try:
        text = bundled_validations().read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def spec_cache() -> Path:
    """Where the digests of documents that passed validation are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mockserver" / "validated-specs"
