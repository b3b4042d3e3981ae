"""``mockserver diff`` catches drift that ``mockserver contract`` catches, and drift it cannot.

- Against every broken variant of test_contract_variants.py it exits 1 and names a step whose
  answers differ.
- The variants of ``SPEC_KEEPING`` keep the spec and every rule the contract checks, but behave
  otherwise than the mock (a 400 for a name in use, another error type, a version bump on
  activate, budgets that lose their ids). The contract run over the operations they concern
  passes; the diff names the step where they part.

The diffs run in-process (the variant is the "deployment"), the contract runs against each variant
served on a loopback port.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from broken_variants import ADMIN_TOKEN, ALL_BY_NAME, SPEC_KEEPING, VARIANTS, Variant
from serving import ROOT, serve_command

from mockserver.contract.http import WsgiHttp
from mockserver.drift.run import DiffSettings, run

PARALLEL = 3


def diff(variant: Variant) -> tuple[int, str]:
    app = variant.build()
    out = io.StringIO()
    settings = DiffSettings(base_url="http://variant.test", authorization=f"Bearer {ADMIN_TOKEN}", legacy_paths=False)
    code = run(settings, out, lambda authorization: WsgiHttp(app, authorization))
    return code, out.getvalue()


@pytest.mark.parametrize("name", [variant.name for variant in [*VARIANTS, *SPEC_KEEPING]])
def test_the_diff_names_a_step_where_the_variant_differs(name: str) -> None:
    variant = ALL_BY_NAME[name]
    code, output = diff(variant)
    assert code == 1, f"{variant.deviation} went unnoticed:\n{output[-4000:]}"
    found = re.findall(r"^\d+\. tour, canonical paths, step \d+: (.+)$", output, re.M)
    assert variant.diff_step in found, (variant.deviation, found)


def contract_against(variant: Variant) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    with serve_command([sys.executable, str(ROOT / "tests" / "broken_variants.py"), variant.name]) as served:
        return subprocess.run(
            [sys.executable, "-m", "mockserver", "contract", "--base-url", served.url, *variant.contract_args],
            cwd=ROOT,
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.mark.slow
def test_the_contract_lets_the_variants_that_keep_the_spec_pass() -> None:
    """The other half: every check of the contract, on the operations each variant changes, passes."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = dict(zip([v.name for v in SPEC_KEEPING], pool.map(contract_against, SPEC_KEEPING), strict=True))
    for name, result in results.items():
        assert result.returncode == 0, f"{name}:\n{result.stdout[-5000:]}"
        assert re.search(r"Result: [1-9]\d* cases, 0 failures; exit 0 \(no contract failure\)", result.stdout), name
