"""``mockserver diff`` catches drift that ``mockserver contract`` catches, and drift it cannot.

- Against every broken variant of test_contract_variants.py it exits 1 and names a step whose
  answers differ.
- The variants of ``SPEC_KEEPING`` keep the spec and every rule the contract checks, but behave
  otherwise than the mock (a 400 for a name in use, another error type, a version bump on
  activate, budgets that lose their ids). The contract run over the operations they concern
  passes; the diff names the step where they part.

The diffs run in-process (the variant is the "deployment"); the contract runs in this process too,
against each variant served on a loopback port.
"""

from __future__ import annotations

import io
import re

import pytest
from broken_variants import ADMIN_TOKEN, ALL_BY_NAME, SPEC_KEEPING, VARIANTS, Variant

from mockserver import BackgroundServer
from mockserver.cli import main
from mockserver.contract.http import WsgiHttp
from mockserver.drift.run import DiffSettings, run


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


@pytest.mark.slow
@pytest.mark.parametrize("name", [variant.name for variant in SPEC_KEEPING])
def test_the_contract_lets_the_variants_that_keep_the_spec_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The other half: every check of the contract, on the operations the variant changes, passes.
    (`mockserver contract` as the CLI runs it, in this process, against the variant served on a port.)"""
    variant = ALL_BY_NAME[name]
    with BackgroundServer(variant.build()) as served:
        code = main(["contract", "--base-url", served.url, "--token", ADMIN_TOKEN, *variant.contract_args])
    output = capsys.readouterr().out
    assert code == 0, output[-5000:]
    assert re.search(r"Result: [1-9]\d* cases, 0 failures; exit 0 \(no contract failure\)", output)
