"""Typed settings of the mock, read from arguments or ``MOCKSERVER_*`` environment variables."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, get_args, get_type_hints

from mockserver.resources import bundled_fixtures, bundled_spec

ENV_PREFIX = "MOCKSERVER_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a value the mock cannot use."""


# `--state` is a SQLite file's path, or a URL of one of these schemes (a state in PostgreSQL that any
# number of mocks share); any other URL is refused at start, never taken for a file name.
STATE_SCHEMES = ("postgresql", "postgres")  # postgres:// is libpq's other spelling
# A scheme and its "//", or what pathlib leaves of them ("postgresql:/host/db"): two characters at
# least, so that a Windows drive ("C:/state.db") stays a path.
_STATE_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
# A URL's password (user:PASSWORD@ or ?password=), kept out of every message and log line.
_PASSWORD = re.compile(r"^([^:]+:/+[^/:@]*):[^@/]*@")
_PASSWORD_PARAMETER = re.compile(r"(password=)[^&]*", re.IGNORECASE)


def masked(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@``, ``?password=``) replaced by ``***``."""
    return _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD.sub(r"\1:***@", url))


def state_target(value: str | Path, source: str) -> Path | str:
    """What ``--state`` names: a SQLite file (a ``Path``) or a PostgreSQL URL (the ``str`` itself).

    A URL of another scheme is refused (``SettingsError``, named after ``source``, a flag or a variable),
    naming the schemes known; so is a URL that was turned into a ``Path`` on its way here (pathlib folds
    its "//", so it is no longer the URL it was). Passwords are left out of every message.
    """
    text = str(value)
    found = _STATE_URL.match(text)
    if found is None:
        return Path(value)
    scheme = found.group(1).lower()
    shown = f"{source}{' ' if source.startswith('--') else '='}{masked(text)!r}"  # --state 'x', MOCKSERVER_STATE='x'
    if scheme in STATE_SCHEMES:
        if isinstance(value, Path) or not text.lower().startswith(f"{scheme}://"):
            raise SettingsError(f"{shown}: not a URL; give a PostgreSQL state as {scheme}://USER@HOST:PORT/DATABASE")
        return text
    known = " and ".join(f"{name}://" for name in STATE_SCHEMES)
    plain = "a SQLite file is given by its path, without a scheme (e.g. ./mock.db)"
    raise SettingsError(f"{shown}: unknown scheme {scheme!r}; {plain}; known schemes: {known}")


def state_path(value: str | Path, source: str) -> Path:
    """The SQLite file ``value`` names; ``SettingsError`` for any URL (where only a file will do)."""
    target = state_target(value, source)
    if isinstance(target, str):
        raise SettingsError(f"{source}={masked(target)!r}: a SQLite file's path is expected here, not a URL")
    return target


class ValidationMode(StrEnum):
    """How messages are checked against the spec (see mockserver.spec.validation)."""

    FAST = "fast"
    REFERENCE = "reference"
    SHADOW = "shadow"


class ServerKind(StrEnum):
    """Which HTTP server `mockserver serve` runs on (see mockserver.server.forked)."""

    AUTO = "auto"  # granian where it runs (Linux), waitress elsewhere
    WAITRESS = "waitress"  # pure Python, every system
    GRANIAN = "granian"  # a Rust HTTP server, several times the throughput; where processes fork (Linux)


class LogFormat(StrEnum):
    """How `mockserver serve` writes its log lines (see mockserver.server.logs)."""

    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` and ``mockserver serve`` need to know."""

    host: str = "127.0.0.1"
    port: int = 8080
    spec: Path = field(default_factory=bundled_spec)
    fixtures: Path = field(default_factory=bundled_fixtures)
    # With an API-keys file, credentials are checked and scoped; without one, any credential is an admin.
    api_keys: Path | None = None
    # Strict: an answer of ours that breaks the contract becomes a 500 (and is recorded either way).
    strict: bool = True
    max_body_bytes: int = 1024 * 1024
    threads: int = 8
    # fast: compiled validators, openapi-core when they are unsure; reference: openapi-core only;
    # shadow: both on every message, reporting any disagreement as a violation.
    validation: ValidationMode = ValidationMode.FAST
    # Origins whose browser apps may call the mock: "*" (any), or a comma-separated list; "" turns CORS off.
    cors_origins: str = "*"
    # Server-wide chaos: a delay for every answer (ms), a share of answers replaced by a documented
    # error (0..1), and the seed that makes those choices repeatable.
    latency_ms: int = 0
    error_rate: float = 0.0
    seed: int | None = None
    # With a token, the control routes (/__mock/...) require `Authorization: Bearer <token>`.
    control_token: str | None = None
    # Isolated sessions (X-Mockserver-Session): at most this many at once, each dropped after this many
    # seconds without a request (0: never).
    max_sessions: int = 100
    session_ttl: int = 3600
    # The request journals of the default state and every session keep at most this many MiB together,
    # oldest entries dropped first (each also keeps at most its last 1,000 entries).
    journal_mb: int = 64
    # A SQLite file that keeps the whole state across restarts; `fresh` starts it from the fixtures.
    state: Path | None = None
    # A state in PostgreSQL that any number of mocks share (`--state postgresql://...`, issue 24); `fresh`
    # starts it from the fixtures too. Never together with `state`. Out of the repr, which would show
    # its password; `state_shown` is the URL as it may be shown.
    state_url: str | None = field(default=None, repr=False)
    fresh: bool = False
    # Deterministic runs: a fixed instant (RFC 3339) as the clock, or ticking from it; sequential ids.
    clock: str | None = None
    clock_ticking: bool = False
    sequential_ids: bool = False
    # `mockserver serve` applies edits of the spec and of the fixture file while it runs.
    watch: bool = True
    # `mockserver serve`'s log lines: text or one JSON object a line; `quiet` leaves out the request lines.
    log_format: LogFormat = LogFormat.TEXT
    quiet: bool = False
    # The HTTP server of `mockserver serve` (the pytest plugin's in-thread server is always waitress).
    server: ServerKind = ServerKind.AUTO
    # `mockserver serve --workers N`: N processes serve one port over one shared state (issue 24).
    workers: int = 1
    # This process's name in a shared state's journal and violations (None: host name and process id).
    instance: str | None = None

    def __post_init__(self) -> None:
        # Accept plain strings where a path or an enumerated option is expected (code and markers).
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and _kind(f.name) is not str:
                object.__setattr__(self, f.name, _parse(f.name, value))
        if isinstance(self.state, str):  # a PostgreSQL URL given as the state (a flag, a variable, code)
            if self.state_url is not None and self.state_url != self.state:
                raise SettingsError("state and state_url name two different states; give one of them")
            object.__setattr__(self, "state_url", self.state)
            object.__setattr__(self, "state", None)
        elif self.state is not None:
            # A URL that became a Path on its way here ("postgresql://h/db" is Path "postgresql:/h/db").
            state_path(self.state, "state")
        if self.state_url is not None:
            if not isinstance(state_target(self.state_url, "state_url"), str):
                raise SettingsError(f"state_url={self.state_url!r}: expected a postgresql:// URL")
            if self.state is not None:
                raise SettingsError("state and state_url name two different states; give one of them")
        if self.workers < 1:
            raise SettingsError(f"workers: expected 1 or more, got {self.workers}")

    @property
    def state_shown(self) -> str | None:
        """Where the state is kept, as messages and the banner may show it (a URL's password masked)."""
        if self.state_url is not None:
            return masked(self.state_url)
        return None if self.state is None else str(self.state)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``MOCKSERVER_<FIELD>`` variables, then explicit overrides (e.g. CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "state" in given or "state_url" in given:  # a state given explicitly replaces the variable's, file or URL
            values.pop("state", None)
            values.pop("state_url", None)
        values.update(given)
        return replace(cls(), **values)


@functools.cache
def _kinds() -> dict[str, Any]:
    # Each field's type, without its `| None`: read once, since get_type_hints is slow.
    return {
        name: next((a for a in get_args(hint) if a is not type(None)), hint)
        for name, hint in get_type_hints(Settings).items()
    }


def _kind(name: str) -> Any:
    return _kinds()[name]


def parse_bool(variable: str, raw: str) -> bool:
    """The value of a yes/no environment variable (true, false, 1, 0, yes, no, on, off)."""
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise SettingsError(f"{variable}={raw!r}: expected one of true, false, 1, 0")


def _parse(name: str, raw: str) -> Any:
    kind = _kind(name)
    if name == "state":
        return state_target(raw, f"{ENV_PREFIX}STATE")
    if kind is bool:
        return parse_bool(f"{ENV_PREFIX}{name.upper()}", raw)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected an integer") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a number") from None
    if kind is Path:
        return Path(raw)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = ", ".join(str(member.value) for member in kind)
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected one of {allowed}") from None
    return raw
