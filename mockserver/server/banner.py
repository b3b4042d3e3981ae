"""What ``mockserver serve`` prints once it listens: where the API, its docs and the inspector are,
how to authenticate, what was loaded and where the state is kept.

``announcer`` wraps the ``announce`` callback of ``server.serving.serve``: after the line that
says where the server listens, it writes this block, built from the running mock, so the block
follows the server whatever prints that line.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

from mockserver.server import control, docs_page, inspector
from mockserver.server.context import Mock
from mockserver.spec.document import Operation
from mockserver.storage.sqlite import SqliteState

LISTENING = re.compile(r"listening on (http://\S+)")
CURL_TOKEN = "dev"  # any bearer token is an admin in permissive mode
LABEL = 11
SESSIONS_NAMED = 10  # sessions named after a restart; the rest are counted


def announcer(mock: Mock, restored: bool, write: Callable[[str], None]) -> Callable[[str], None]:
    """An ``announce`` callback: ``write`` every message, and after the listening line the block."""

    def announce(message: str) -> None:
        write(message)
        found = LISTENING.search(message)
        if found:
            write("\n".join(["", *lines(mock, found.group(1), restored=restored), ""]))

    return announce


def lines(mock: Mock, url: str, restored: bool = False, temporary: bool = False) -> list[str]:
    """The block's lines. ``restored``: the state file held a state when the mock started;
    ``temporary``: the state file is the one ``--workers N`` made for its workers."""
    base = url.replace("//0.0.0.0:", "//127.0.0.1:")  # a link to the wildcard address is no link
    settings = mock.settings
    operations = [op for op in mock.spec.operations.values() if not op.is_alias]
    aliases = len(mock.spec.operations) - len(operations)
    prefix = os.path.commonprefix([op.path for op in operations]) if operations else "/"
    prefix = prefix[: prefix.rfind("/") + 1] or "/"
    with mock.store.atomic() as state:
        profiles = len(state.profiles)
    seeded = len(mock.store.seed.profiles)
    info = mock.spec.document.get("info", {})
    described = f"{info.get('title', 'untitled')} {info.get('version', '')}".rstrip()
    counted = f"{len(operations)} operations" + (f"; {aliases} deprecated aliases" if aliases else "")
    out = [
        _row("API", f"{base}{prefix}  ({counted})"),
        _row("Docs", f"{base}{docs_page.PREFIX}  (Swagger UI; the spec itself: {base}{control.SPEC_PATH})"),
        _row("Inspector", f"{base}{inspector.PAGE}  (requests as they arrive, contract violations, state, snapshots)"),
    ]
    if mock.auth.keyring is None:
        out.append(_row("Auth", "permissive: any Bearer token or Basic login is an admin, e.g."))
        target = _list_operation(operations)
        if target is not None:
            command = ["curl", "-s", "-H", f"Authorization: Bearer {CURL_TOKEN}", base + target.path]
            out.append(_row("", shlex.join(command)))
    else:
        out.append(_row("Auth", f"strict: the keys and admins of {_shown(settings.api_keys)}; others get 401"))
    if settings.control_token:
        out.append(
            _row("Control", f"{control.PREFIX} routes need Authorization: Bearer <control token>; the page asks for it")
        )
    out.append(_row("Spec", f"{_shown(settings.spec)}  ({described})"))
    out.append(_row("Fixtures", f"{_shown(settings.fixtures)}  ({seeded} profiles)"))
    if settings.state_url is not None:
        shown = settings.state_shown
        out.append(_row("State", f"{shown}: {profiles} profiles, shared by every mock given this URL, kept"))
        out.append(_row("", "--fresh (or POST /__mock/reset) starts it again from the fixtures"))
    elif temporary:
        out.append(
            _row("State", f"shared by the {settings.workers} workers, {profiles} profiles; lost when the mock stops")
        )
        out.append(_row("", "(a temporary SQLite file; --state FILE keeps it)"))
    elif settings.state is None:
        out.append(_row("State", f"in memory, {profiles} profiles; lost when the mock stops (--state FILE keeps it)"))
    elif restored:
        out.append(_row("State", f"{_shown(settings.state)}: {profiles} profiles kept from the last run"))
        out.extend(_row("", line) for line in _sessions_back(mock))
        out.append(_row("", "--fresh (or POST /__mock/reset) starts again from the fixtures"))
    else:
        out.append(_row("State", f"{_shown(settings.state)}: started from the fixtures, kept across restarts"))
        out.append(_row("", "--fresh (or POST /__mock/reset) starts again from the fixtures"))
    return out


def workers_row(names: list[str]) -> str:
    """The line naming the worker processes of ``mockserver serve --workers N``, as the journal names them."""
    return _row("Workers", f"{len(names)} processes on one port, one state: {', '.join(names)}")


def _sessions_back(mock: Mock) -> list[str]:
    """The line naming the sessions the state file brought back (none when it kept none)."""
    file = mock.store.persistence
    names = [saved.name for saved in file.sessions()] if isinstance(file, SqliteState) else []
    if not names:
        return []
    shown = ", ".join(names[:SESSIONS_NAMED]) + (
        f" and {len(names) - SESSIONS_NAMED} more" if len(names) > SESSIONS_NAMED else ""
    )
    return [f"{len(names)} session{'s' if len(names) != 1 else ''} brought back: {shown}"]


def _row(label: str, text: str) -> str:
    return f"  {label:<{LABEL}}{text}"


def _list_operation(operations: list[Operation]) -> Operation | None:
    """The shortest GET without parameters in its path: a request any permissive mock answers with 200."""
    reads = [op for op in operations if op.method == "GET" and "{" not in op.path and not op.deprecated]
    return min(reads, key=lambda op: op.path.count("/"), default=None)


def _shown(path: Path | None) -> str:
    """A path relative to the working directory when it is below it, else absolute."""
    if path is None:
        return "-"
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
