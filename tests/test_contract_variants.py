"""``mockserver contract`` catches drift: against each broken variant of the mock (tests/broken_variants.py)
it exits 1 and its report names the broken rule. (The real mock passes: test_contract_command.py.)

The variants run in parallel, each served by its own process on a loopback port, with only the
phases and operations that expose its deviation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from broken_variants import ADMIN_TOKEN, BY_NAME, VARIANTS, Variant
from serving import ROOT, run_mockserver, serve_command

pytestmark = pytest.mark.slow
PARALLEL = 3


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    report: str
    failing_checks: set[str]


def run_against(variant: Variant, report_dir: Path) -> Run:
    server = [sys.executable, str(ROOT / "tests" / "broken_variants.py"), variant.name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    with serve_command(server) as served:
        result = run_mockserver(
            "contract",
            "--base-url",
            served.url,
            "--report-dir",
            str(report_dir),
            *variant.contract_args,
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
            timeout=600,
        )
    junit = ET.parse(report_dir / "junit.xml").getroot()
    checks = {failure.get("message", "").split(":")[0] for failure in junit.iter("failure")}
    report = (report_dir / "report.md").read_text(encoding="utf-8")
    return Run(result.returncode, result.stdout + result.stderr, report, checks)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("variants")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        done = pool.map(lambda variant: run_against(variant, base / variant.name), VARIANTS)
        return {variant.name: run for variant, run in zip(VARIANTS, done, strict=True)}


@pytest.mark.parametrize("name", list(BY_NAME))
def test_the_contract_run_fails_and_names_the_broken_rule(runs: dict[str, Run], name: str) -> None:
    variant, run = BY_NAME[name], runs[name]
    assert run.exit_code == 1, f"{variant.deviation} went unnoticed:\n{run.output[-6000:]}"
    assert variant.caught_by in run.failing_checks, (variant.deviation, run.failing_checks)
    assert f"| `{variant.caught_by}` |" in run.report  # the failures-by-check table
    assert f"Failures by check:\n  {variant.caught_by}" in run.output or f"\n  {variant.caught_by} " in run.output
    assert "Reproduce with:" in run.report and "curl -X" in run.report


def test_the_pytest_suite_against_a_deployment_catches_drift_too() -> None:
    """``pytest tests/test_contract_suite.py --api-url URL`` fails on a variant, naming the check."""
    variant = BY_NAME["version-not-bumped"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    with serve_command([sys.executable, str(ROOT / "tests" / "broken_variants.py"), variant.name]) as served:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_contract_suite.py"]
            + ["--api-url", served.url],
            cwd=ROOT,
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 1, result.stdout[-4000:]
    assert f"Custom check failed: `{variant.caught_by}`" in result.stdout
    assert "2 failed" in result.stdout  # the update operation of each path family
