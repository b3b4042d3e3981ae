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


# `--state` is a SQLite file's path, or a URL of one of these schemes; any other URL is refused at
# start, never taken for a file name. PostgreSQL (issue 24) is known but not served yet.
STATE_SCHEMES = ("postgresql", "postgres")  # postgres:// is libpq's other spelling
# A scheme and its "//", or what pathlib leaves of them ("postgresql:/host/db"): two characters at
# least, so that a Windows drive ("C:/state.db") stays a path.
_STATE_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
# A URL's password (user:PASSWORD@ or ?password=), kept out of every message and log line.
_PASSWORD = re.compile(r"^([^:]+:/+[^/:@]*):[^@/]*@")
_PASSWORD_PARAMETER = re.compile(r"(password=)[^&]*", re.IGNORECASE)


def state_path(value: str | Path, source: str) -> Path:
    """The SQLite file ``value`` names; ``SettingsError`` for a URL, named after ``source`` (a flag or variable).

    A value with a URL scheme is refused: ``postgresql://`` (and ``postgres://``) as not supported
    yet, any other scheme as unknown, the known ones named. Passwords are left out of the message.
    """
    text = str(value)
    found = _STATE_URL.match(text)
    if found is None:
        return Path(value)
    scheme = found.group(1).lower()
    masked = _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD.sub(r"\1:***@", text))
    shown = f"{source}{' ' if source.startswith('--') else '='}{masked!r}"  # --state 'x', MOCKSERVER_STATE='x'
    plain = "a SQLite file is given by its path, without a scheme (e.g. ./mock.db)"
    if scheme in STATE_SCHEMES:
        raise SettingsError(f"{shown}: a state in PostgreSQL is not supported yet; {plain}")
    known = " and ".join(f"{name}://" for name in STATE_SCHEMES)
    raise SettingsError(f"{shown}: unknown scheme {scheme!r}; {plain}; known schemes: {known} (not supported yet)")


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
    # starts it from the fixtures too. Never together with `state`.
    state_url: str | None = None
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
        if self.state is not None:
            # A URL that became a Path on its way here ("postgresql://h/db" is Path "postgresql:/h/db").
            state_path(self.state, "state")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``MOCKSERVER_<FIELD>`` variables, then explicit overrides (e.g. CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
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
        return state_path(raw, f"{ENV_PREFIX}STATE")
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
