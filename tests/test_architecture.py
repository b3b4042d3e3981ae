"""ARCHITECTURE.md's import rules, checked against the code."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"
# Modules by dotted name under the package ("cli", "domain.store"); packages' __init__ files aside.
MODULES = {
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.stem not in {"__init__", "__main__"}
}


def _allowed_imports() -> dict[str, set[str]]:
    """The "may import" column of ARCHITECTURE.md's module table: the one statement of the rules.

    A cell names modules in backticks (`contract_*` stands for every module it matches); "everything
    above" is every module of the rows above it.
    """
    allowed: dict[str, set[str]] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        row = re.fullmatch(r"\| `([\w.]+)` \|[^|]*\|([^|]*)\|", line)
        if not row:
            continue
        names: set[str] = set()
        for token in re.findall(r"`([\w.*]+)`", row.group(2)):
            names |= {m for m in MODULES if fnmatch.fnmatchcase(m, token)}
        if "everything above" in row.group(2):
            names |= set(allowed)
        allowed[row.group(1)] = names
    return allowed


ALLOWED = _allowed_imports()
FLASK_ALLOWED = {"server.context", "server.routes", "server.control", "server.docs_page", "server.app"}
# Schemathesis is heavy and needed only while a contract run is going on.
SCHEMATHESIS_ALLOWED = {"contract.runner", "contract.checks", "contract.hooks"}


def imports(module: str) -> tuple[set[str], set[str]]:
    """(modules of this package, top-level third-party packages) that ``module`` imports."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
    # Imports under `if TYPE_CHECKING:` are for the type checker only.
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    internal, external = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("mockserver."):
                part = name.removeprefix("mockserver.")
                while part and part not in ALLOWED:  # "domain.store.State" -> "domain.store"
                    part = part.rpartition(".")[0]
                if part:
                    internal.add(part)
            else:
                external.add(name.split(".")[0])
    return internal, external


def test_every_module_is_in_the_table() -> None:
    assert set(ALLOWED) == MODULES


def test_the_pytest_plugin_imports_nothing_heavy_at_module_level() -> None:
    tree = ast.parse((PACKAGE / "pytest_plugin.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top_level if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in top_level if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "dataclasses", "collections.abc", "typing", "pytest"}


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_what_architecture_allows(module: str) -> None:
    internal, external = imports(module)
    assert internal <= ALLOWED[module], internal - ALLOWED[module]
    if module not in FLASK_ALLOWED:
        assert "flask" not in external
    if module not in SCHEMATHESIS_ALLOWED:
        assert "schemathesis" not in external


def test_the_cli_stays_cheap_to_import() -> None:
    """``contract`` (and through it Schemathesis) is imported only when the command runs."""
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    top_level = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert "mockserver.contract.runner" not in top_level
    contract = ast.parse((PACKAGE / "contract" / "runner.py").read_text(encoding="utf-8"))
    heavy = {"mockserver.contract.checks", "mockserver.contract.hooks", "schemathesis"}
    for node in contract.body:
        if isinstance(node, ast.ImportFrom):
            names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            assert not names & heavy, names
