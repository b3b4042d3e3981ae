"""ARCHITECTURE.md's import rules, checked against the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"
ALLOWED = {
    "resources": set(),
    "settings": {"resources"},
    "errors": set(),
    "timeutil": set(),
    "schema_errors": set(),
    "spec": set(),
    "store": set(),
    "auth": {"errors"},
    "history": {"errors", "store", "timeutil"},
    "profiles": {"errors", "history", "spec", "store", "timeutil"},
    "copies": {"errors", "history", "spec", "store", "timeutil"},
    "roles": {"copies", "errors", "history", "store"},
    "fixtures": {"auth", "copies", "fastcheck", "history", "profiles", "schema_errors", "spec", "store", "timeutil"},
    "fastcheck": {"spec"},
    "reference": {"auth", "errors", "schema_errors", "spec"},
    "validation": {"errors", "fastcheck", "reference", "settings", "spec"},
    "context": {
        "auth",
        "copies",
        "history",
        "journal",
        "prefer",
        "profiles",
        "roles",
        "settings",
        "spec",
        "store",
        "validation",
    },
    "journal": set(),
    "routes": {"auth", "context", "errors", "journal", "prefer", "spec", "validation"},
    "control": {"context", "errors", "routes", "store", "timeutil"},
    "docs_page": {"context"},
    "cors": set(),
    "prefer": {"errors", "spec"},
    "app": {
        "auth",
        "context",
        "control",
        "copies",
        "cors",
        "docs_page",
        "fixtures",
        "history",
        "persistence",
        "prefer",
        "profiles",
        "roles",
        "routes",
        "settings",
        "spec",
        "store",
        "timeutil",
        "validation",
    },
    "server": set(),
    "cli": {"app", "fixtures", "persistence", "reference", "reload", "server", "settings", "spec"},
    "persistence": {"store"},
    "reload": {"app", "copies", "fixtures", "profiles", "routes", "spec", "validation"},
    "pytest_plugin": {"app", "context", "journal", "server", "settings", "store"},
}
FLASK_ALLOWED = {"context", "routes", "control", "docs_page", "app"}


def imports(module: str) -> tuple[set[str], set[str]]:
    """(modules of this package, top-level third-party packages) that ``module`` imports."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
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
                part = name.split(".")[1]
                if part in ALLOWED:
                    internal.add(part)
            else:
                external.add(name.split(".")[0])
    return internal, external


def test_every_module_is_in_the_table() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules == set(ALLOWED)


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
