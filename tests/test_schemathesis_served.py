"""Schemathesis's own CLI against ``mockserver serve`` over HTTP: every check, every phase."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from conftest import ADMIN_TOKEN
from schemathesis_config import CANONICAL_PATHS, LEGACY_PATHS
from serving import ROOT, serve

from mockserver.resources import bundled_spec
from mockserver.spec.document import Spec

pytestmark = pytest.mark.slow
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.parametrize("exclude", [LEGACY_PATHS, CANONICAL_PATHS], ids=["canonical-family", "deprecated-family"])
def test_schemathesis_cli_finds_no_failure_against_the_served_mock(tmp_path: Path, exclude: str) -> None:
    junit = tmp_path / "junit.xml"
    with serve("--api-keys", str(ROOT / "fixtures" / "api-keys.json")) as server:
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{server.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {ADMIN_TOKEN}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--exclude-path-regex",
                exclude,
                "--max-examples",
                "15",
                "--seed",
                "20261126",
                "--report",
                "junit",
                "--report-junit-path",
                str(junit),
                "--no-color",
            ],
            cwd=ROOT,  # picks up schemathesis.toml
            capture_output=True,
            text=True,
            timeout=1200,
        )
        violations = requests.get(f"{server.url}/__mock/violations", timeout=10).json()["violations"]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert violations == []
    suite = ET.parse(junit).getroot()
    cases = suite.iter("testcase")
    names = [case.get("name") for case in cases]
    family = [op for op in Spec.load(bundled_spec()).operations.values() if not re.search(exclude, op.path)]
    assert len(names) == len(family) + 1  # one per operation, and the stateful run
    assert not list(suite.iter("failure")) and not list(suite.iter("error"))
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in result.stdout, phase
