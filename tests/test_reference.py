"""The docs site: its configuration page, generated from the CLI, and the strict build of every page.

docs/reference.py writes the configuration page from ``mockserver``'s own parsers when the site is
built; these tests hold it to every flag of every command, and hold every flag to a help text. The
build itself runs here as `make docs` runs it (strict), so a broken link fails ``make test`` too.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mockserver.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
# The nav of mkdocs.yml, one page per task (issue 25), each a folder of the built site.
PAGES = (
    "index.md",
    "frontend.md",
    "sessions.md",
    "pytest.md",
    "checking-deployments.md",
    "configuration.md",
    "behaviour.md",
    "scaling.md",
    "performance.md",
    "development.md",
    "architecture.md",
    "changelog.md",
)


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _reference()
FLAGS = [(command, action) for command, parser in reference.commands() for action in reference.options(parser)]


def test_every_command_is_there() -> None:
    names = [command for command, _ in reference.commands()]
    assert names == [
        "mockserver",
        "mockserver serve",
        "mockserver contract",
        "mockserver proxy",
        "mockserver record",
        "mockserver diff",
    ]


@pytest.mark.parametrize(("command", "action"), FLAGS, ids=[f"{c} {a.option_strings[0]}" for c, a in FLAGS])
def test_every_flag_has_help_text(command: str, action: argparse.Action) -> None:
    assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), (
        f"{command} {'/'.join(action.option_strings)} has no help text: add help= to its add_argument"
    )


def test_every_flag_of_every_command_is_on_the_generated_page() -> None:
    page = reference.render()
    sections = page.split("\n## ")
    for command, parser in reference.commands():
        (section,) = [s for s in sections if s.startswith(f"`{command}`\n")]
        for action in reference.options(parser):
            for option in action.option_strings:
                assert f"<code>{option}" in section or f", {option}" in section, f"{command} {option} is not listed"
            if action.help:
                assert reference._cell(action.help) in section


def test_every_variable_of_the_settings_is_on_the_generated_page() -> None:
    page = reference.render()
    for field in Settings.__dataclass_fields__:
        assert f"<code>{ENV_PREFIX}{field.upper()}</code>" in page, field
    for variable in ("MOCKSERVER_PROXY_UPSTREAM", "MOCKSERVER_PROXY_TIMEOUT", "MOCKSERVER_CONTRACT_TOKEN"):
        assert f"<code>{variable}</code>" in page


def test_defaults_come_from_the_settings() -> None:
    page = reference.render()
    row = next(line for line in page.splitlines() if line.startswith("| <code>--port PORT</code>"))
    assert f"<code>{Settings().port}</code>" in row and "<code>MOCKSERVER_PORT</code>" in row
    workers = next(line for line in page.splitlines() if line.startswith("| <code>--workers N</code>"))
    assert "<code>MOCKSERVER_WORKERS</code>" in workers and f"<code>{Settings().workers}</code>" in workers
    spec = next(line for line in page.splitlines() if line.startswith("| <code>--spec SPEC</code>"))
    assert "the bundled access-profiles.yaml" in spec and str(ROOT) not in spec


def test_a_flag_without_help_fails_the_check() -> None:
    """The help check above is not vacuous: a flag added without help= is caught."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quiet-flag", action="store_true")
    (action,) = reference.options(parser)
    with pytest.raises(AssertionError, match="no help text"):
        test_every_flag_has_help_text("mockserver test", action)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=180,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(MKDOCS.parent) + ":/usr/bin:/bin"},
    )


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_page(tmp_path: Path) -> None:
    built = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    for page in PAGES:
        folder = "" if page == "index.md" else page.removesuffix(".md") + "/"
        assert (tmp_path / "site" / folder / "index.html").is_file(), page
    configuration = (tmp_path / "site" / "configuration" / "index.html").read_text(encoding="utf-8")
    for command, action in FLAGS:
        for option in action.option_strings:
            assert option in configuration, f"{command} {option}"


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The strict build is strict: a copy of the site with a link to a page, and one to an anchor, that
    are not there fails, naming both."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for top in ("mkdocs.yml", "ARCHITECTURE.md", "CHANGELOG.md"):
        shutil.copy(ROOT / top, tmp_path / top)
    broken = tmp_path / "docs" / "sessions.md"
    links = "\nSee [the missing page](missing.md) and [a missing anchor](index.md#no-such-section).\n"
    broken.write_text(broken.read_text(encoding="utf-8") + links, encoding="utf-8")
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "missing.md" in built.stderr and "#no-such-section" in built.stderr, built.stderr


def test_the_readme_is_a_short_front_door_whose_links_lead_somewhere() -> None:
    """At most 300 lines (issue 25); every link of it into the repository names a file or folder that
    exists, and every page of the site's nav that is a file of docs/ is linked from it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", readme) if "://" not in t]
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing
    unlinked = [p for p in PAGES if (ROOT / "docs" / p).exists() and f"docs/{p}" not in targets]
    assert not unlinked, unlinked
