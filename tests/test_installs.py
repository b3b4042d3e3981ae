"""requirements.lock: it satisfies pyproject.toml, and this environment holds exactly what it pins.

`make lock` rewrites the lock after pyproject.toml changes; these tests fail until it has been run.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def locked() -> dict[str, str]:
    """Name -> pinned version of every lock entry that applies to this interpreter and platform."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        found = PIN.match(line)
        if found is None:
            continue
        marker = found.group("marker")
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(found.group("name"))] = found.group("version")
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_the_lock_pins_something() -> None:
    assert len(locked()) > 20


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_the_lock_satisfies_pyproject(requirement: Requirement) -> None:
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is declared in pyproject.toml but not locked: run make lock"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"requirements.lock pins {requirement.name}=={pins[name]}, outside {requirement}: run make lock"
    )


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("mockserver", None)
    # What every venv starts with, not installed from the lock.
    for tool in ("pip", "setuptools", "wheel"):
        installed.pop(tool, None)
    pins = locked()
    wrong = {name: (version, installed.get(name)) for name, version in pins.items() if installed.get(name) != version}
    extra = sorted(set(installed) - set(pins))
    assert not wrong, f"locked version != installed version: {wrong}; reinstall with `make clean test`"
    assert not extra, f"installed but not in requirements.lock: {extra}"
