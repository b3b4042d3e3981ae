"""The import rules import-linter cannot state: what the entry points import at module level.

Which package may import which is stated as import-linter contracts in pyproject.toml and checked
by `make lint`. import-linter sees every import, wherever it is written; these tests see *when*: the
pytest plugin loads in every pytest run of an environment that has mockserver, and the CLI on every
command, so both keep their costly imports (Flask, openapi-core, Schemathesis) inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"


def module_level_imports(path: Path) -> set[str]:
    """Modules a file imports at its top level (names imported from a module count as submodules)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_pytest_plugin_imports_nothing_heavy_at_module_level() -> None:
    top_level = {name.split(".")[0] for name in module_level_imports(PACKAGE / "pytest_plugin.py")}
    assert top_level <= {"__future__", "dataclasses", "collections", "typing", "pytest"}, top_level


def test_the_cli_stays_cheap_to_import() -> None:
    """contract and diff (and through them Schemathesis) and the app are imported only when a command runs."""
    cli = module_level_imports(PACKAGE / "cli.py")
    heavy_packages = ("mockserver.contract", "mockserver.drift", "mockserver.server.app")
    assert not {name for name in cli if name.startswith(heavy_packages)}, cli
    runner = module_level_imports(PACKAGE / "contract" / "runner.py")
    heavy = {"mockserver.contract.checks", "mockserver.contract.hooks", "schemathesis"}
    assert not runner & heavy, runner & heavy
    diff = module_level_imports(PACKAGE / "drift" / "run.py")
    assert not diff & {"mockserver.drift.stateful", "schemathesis", "hypothesis"}, diff
