"""The pages of the docs site that are not files of docs/, made at build time.

mkdocs.yml names this file as a hook. `on_files` adds to the site's files:

- ``configuration.md``, made by ``render()`` from ``mockserver.cli``'s argparse parsers (every
  command, every flag, its help) and the settings each command fills (``Settings``,
  ``ProxyOptions``, ``ContractSettings``...: the defaults and the ``MOCKSERVER_*`` variables).
  Nothing on it is written by hand, so it cannot drift from ``--help``; tests/test_reference.py
  checks that every flag is on it and that no flag lacks its help;
- ``architecture.md`` and ``changelog.md``: ARCHITECTURE.md and CHANGELOG.md. They stay at the top
  of the repository, where developers and release readers look for them; a link of theirs into
  ``docs/`` is made relative to the site (``docs/behaviour.md`` -> ``behaviour.md``), and any other
  relative link fails the strict build, as it would not lead anywhere on the site.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAGE = "configuration.md"
ROOT = Path(__file__).resolve().parent.parent
# Site pages whose text is a file at the top of the repository.
INCLUDED = {"architecture.md": "ARCHITECTURE.md", "changelog.md": "CHANGELOG.md"}

# contract, record and diff read these three from MOCKSERVER_CONTRACT_* when the flag is not given
# (mockserver.contract.http.target_from); their other flags have no variable.
TARGET_FLAGS = ("base_url", "token", "basic")


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``mockserver`` itself, then each of its commands, in the order ``--help`` lists them."""
    from mockserver.cli import _parser

    parser = _parser()
    yield "mockserver", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield f"mockserver {name}", command


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A parser's flags, ``--help`` left out (every command has it)."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _settings_of(command: str) -> list[tuple[type[Any], str | None]]:
    """The dataclasses a command's flags fill, each with the prefix of its variables (None: no variables)."""
    from mockserver import settings
    from mockserver.contract import http
    from mockserver.contract.record import RecordSettings
    from mockserver.contract.runner import ContractSettings
    from mockserver.drift.run import DiffSettings
    from mockserver.server import proxy

    return {
        "mockserver serve": [(settings.Settings, settings.ENV_PREFIX)],
        "mockserver proxy": [(proxy.ProxyOptions, proxy.ENV_PREFIX), (settings.Settings, settings.ENV_PREFIX)],
        "mockserver contract": [(ContractSettings, http.ENV_PREFIX)],
        "mockserver record": [(RecordSettings, http.ENV_PREFIX)],
        "mockserver diff": [(DiffSettings, http.ENV_PREFIX)],
    }.get(command, [])


def _field(kinds: list[tuple[type[Any], str | None]], name: str) -> tuple[dataclasses.Field[Any], str | None] | None:
    for kind, prefix in kinds:
        for found in dataclasses.fields(kind):
            if found.name == name:
                return found, prefix
    return None


def variable(command: str, action: argparse.Action) -> str | None:
    """The environment variable a flag can also be given as, if it has one."""
    kinds = _settings_of(command)
    found = _field(kinds, action.dest)
    if command in ("mockserver contract", "mockserver record", "mockserver diff"):
        prefix = kinds[0][1] if action.dest in TARGET_FLAGS else None
    elif found is not None:
        prefix = found[1]
    else:
        prefix = None
    return None if prefix is None else prefix + action.dest.upper()


def _shown(value: Any) -> str:
    if value is None or value == () or value is dataclasses.MISSING:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value"):  # an enumeration
        return str(value.value)
    if value == "":
        return '""'
    return str(value)


def _made(factory: Any) -> str:
    """A default made at run time: the bundled spec and fixtures are named by file, not by this checkout's path."""
    value = factory()
    return f"the bundled {value.name}" if isinstance(value, Path) else _shown(value)


def default(command: str, action: argparse.Action) -> str:
    """A flag's default: its setting's (the dataclass the command fills), else the parser's."""
    found = _field(_settings_of(command), action.dest)
    if isinstance(action, argparse._VersionAction):
        return ""
    if found is not None:
        field = found[0]
        if field.default_factory is not dataclasses.MISSING:
            return _made(field.default_factory)
        return _shown(field.default)
    if action.default is argparse.SUPPRESS:
        return ""
    return _shown(action.default)


def invocation(action: argparse.Action) -> str:
    """The flag as it is typed: ``--port PORT``, ``--server {auto,waitress,granian}``, ``--strict, --no-strict``."""
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    if action.metavar is not None:
        shown = str(action.metavar)
    elif action.choices is not None:
        shown = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        shown = action.dest.upper()
    return ", ".join(f"{option} {shown}" for option in action.option_strings)


def _cell(text: str, code: bool = False) -> str:
    """Table-safe text: HTML-escaped, its pipes as entities (a pipe would end the cell); outside code,
    Markdown's own characters escaped, so ``/__mock/`` or ``"*"`` in a help text stays as written."""
    escaped = html.escape(text, quote=False).replace("|", "&#124;")
    if code:
        return f"<code>{escaped}</code>" if text else ""
    return _plain(escaped)


def _plain(text: str) -> str:
    """``text`` with the characters Markdown would read as emphasis, code or links escaped."""
    for mark in "\\`*_[]":
        text = text.replace(mark, "\\" + mark)
    return text


def render() -> str:
    """The configuration page's Markdown."""
    from mockserver import settings

    lines = [
        "# Configuration",
        "",
        "Every command of `mockserver`, each of its flags, the environment variable that can give it",
        "instead, and its default. This page is generated when the site is built, from the command's own",
        "parser (what `mockserver COMMAND --help` prints) and the settings the command fills, so it says",
        "what the installed version does. A flag beats its variable; a variable beats the default. Boolean",
        "variables take `true`, `false`, `1`, `0`, `yes`, `no`, `on` or `off`.",
        "",
    ]
    flagged: set[str] = set()
    for command, parser in commands():
        lines += [f"## `{command}`", ""]
        if parser.description:
            lines += [_plain(html.escape(parser.description, quote=False)), ""]
        lines += ["| Flag | Variable | Default | What it does |", "|---|---|---|---|"]
        for action in options(parser):
            name = variable(command, action)
            if name is not None and name.startswith(settings.ENV_PREFIX):
                flagged.add(name)
            lines.append(
                f"| {_cell(invocation(action), code=True)} | {_cell(name or '', code=True)} "
                f"| {_cell(default(command, action), code=True)} | {_cell(action.help or '')} |"
            )
        lines.append("")
    unflagged = [
        f
        for f in dataclasses.fields(settings.Settings)
        if settings.ENV_PREFIX + f.name.upper() not in flagged and f.init
    ]
    lines += [
        "## Variables without a flag",
        "",
        "`mockserver serve` reads a `MOCKSERVER_<FIELD>` variable for every field of `mockserver.Settings`",
        "(the object `create_app` and the pytest plugin's `@pytest.mark.mockserver(...)` take too); these have",
        "no flag:",
        "",
        "| Variable | `Settings` field | Default |",
        "|---|---|---|",
    ]
    for field in unflagged:
        made = field.default_factory is not dataclasses.MISSING
        shown = _made(field.default_factory) if made else _shown(field.default)  # type: ignore[arg-type]
        lines.append(
            f"| {_cell(settings.ENV_PREFIX + field.name.upper(), code=True)} | {_cell(field.name, code=True)} "
            f"| {_cell(shown, code=True)} |"
        )
    lines.append("")
    return "\n".join(lines)


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: the generated pages join the site's files (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    # ARCHITECTURE.md and CHANGELOG.md stay at the top of the repository, where developers and
    # release readers look for them; the site shows them as they are.
    for page, source in INCLUDED.items():
        text = (ROOT / source).read_text(encoding="utf-8").replace("](docs/", "](")
        files.append(File.generated(config, page, content=text))
    return files
