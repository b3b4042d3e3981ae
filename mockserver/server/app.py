"""``create_app``: the one place that wires the mock together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from flask import Flask

from mockserver.domain.auth import Authenticator
from mockserver.domain.fixtures import load_api_keys, load_seed
from mockserver.domain.store import Store, fixed_clock, utc_now
from mockserver.domain.timeutil import parse_timestamp
from mockserver.resources import known_validations, spec_cache
from mockserver.server import control, docs_page, inspector, routes, session_views
from mockserver.server.context import Mock, Violation, operations, recording
from mockserver.server.cors import Cors
from mockserver.server.prefer import Chaos
from mockserver.server.sessions import SessionPrefix, Sessions
from mockserver.server.turns import leave
from mockserver.settings import Settings, SettingsError
from mockserver.spec.document import Spec, SpecError
from mockserver.spec.validation import Validator
from mockserver.storage.engines import open_state

# Every store of this process (the sessions' too) gives up its request's turn before it waits on a disk
# or a database; a no-op for a thread without one (server/turns.py).
Store.waiting = leave


@lru_cache(maxsize=8)
def load_spec(path: Path, mtime_ns: int) -> Spec:
    """One validated spec per file version and process."""
    spec = Spec.load(path)
    spec.validate(cache=spec_cache(), known=known_validations())
    return spec


def spec_for(path: Path) -> Spec:
    """The validated spec of the file at ``path`` as it is now (cached while the file is unchanged)."""
    try:
        return load_spec(path.resolve(), path.stat().st_mtime_ns)
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None


def _clock(settings: Settings) -> Callable[[], datetime]:
    if settings.clock is None:
        return utc_now
    try:
        instant = parse_timestamp(settings.clock)
    except ValueError as exc:
        raise SettingsError(f"clock: {exc}") from None
    return fixed_clock(instant, settings.clock_ticking)


def create_app(settings: Settings | None = None) -> Flask:
    """A mock serving ``settings.spec`` with the state of ``settings.fixtures``."""
    settings = settings or Settings()
    spec = spec_for(settings.spec)
    routes.check_handlers(spec)
    clock = _clock(settings)
    for name in ("max_sessions", "session_ttl"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name}: expected 0 or more, got {getattr(settings, name)}")
    if settings.journal_mb < 1:
        raise SettingsError(f"journal_mb: expected 1 or more, got {settings.journal_mb}")
    persistence = open_state(settings)
    # Shared (workers, PostgreSQL): the store loads the state, or seeds it if no process has yet.
    shared = persistence is not None and persistence.shared
    saved = persistence.load() if persistence is not None and not settings.fresh and not shared else None
    store = Store(
        load_seed(settings.fixtures, spec, clock),
        clock=clock,
        persistence=persistence,
        saved=saved,
        sequential_ids=settings.sequential_ids,
    )
    permissions = frozenset(op.permission for op in spec.operations.values())
    keyring = load_api_keys(settings.api_keys, permissions) if settings.api_keys else None
    journal, violations = recording(settings)  # in a shared state, every instance's
    mock = Mock(
        settings=settings,
        spec=spec,
        store=store,
        **operations(store, spec),
        auth=Authenticator(keyring),
        validator=Validator(spec, settings.max_body_bytes, settings.validation),
        journal=journal,
        violations=violations,
    )
    mock.validator.report = lambda request, op_id, message: mock.record(
        Violation(op_id, request.method, request.path, None, (message,))
    )
    app = Flask("mockserver")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mockserver"] = mock
    mock.chaos = Chaos(settings.latency_ms, settings.error_rate, settings.seed)
    sessions = Sessions(mock, persistence)
    sessions.load_saved()
    app.extensions["mockserver.sessions"] = sessions
    control.register(app)
    session_views.register(app)
    docs_page.register(app)
    inspector.register(app)
    routes.register(app, mock, lambda path: control.is_control(path) or docs_page.is_docs(path), sessions.pick)
    app.wsgi_app = SessionPrefix(app.wsgi_app)  # type: ignore[method-assign]
    if settings.cors_origins:
        app.wsgi_app = Cors(app.wsgi_app, settings.cors_origins)  # type: ignore[method-assign]
    return app
