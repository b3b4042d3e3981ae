"""The project's Schemathesis settings (schemathesis.toml) with test-specific additions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import schemathesis

ROOT = Path(__file__).resolve().parent.parent


def config(token: str, **generation: Any) -> schemathesis.Config:
    data = tomllib.loads((ROOT / "schemathesis.toml").read_text(encoding="utf-8"))
    data["headers"] = {"Authorization": f"Bearer {token}"}
    data.setdefault("generation", {}).update(generation)
    return schemathesis.Config.from_dict(data)


# The two path families. Select one by excluding the other: Schemathesis ORs include filters with
# the ones schemathesis.toml's [[operations]] section adds.
CANONICAL_PATHS = r"^/api/governance/"
LEGACY_PATHS = r"^/api/(?!governance/)"
