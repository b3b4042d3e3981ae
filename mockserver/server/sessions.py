"""Isolated sessions: many clients of one mock, each with a state of its own.

A request names its session in one of three ways (the first one present wins):

1. a path prefix, ``/__session/NAME/...``, for clients that take a base URL and nothing else;
2. the ``X-Mockserver-Session: NAME`` header;
3. the ``mockserver_session`` cookie, which ``GET /__mock/sessions/NAME/enter`` sets in a browser.

A request that names none uses the default state, as if sessions did not exist. A session starts as
a copy of the loaded fixtures on first use (records are values and are shared, so a copy costs its
containers only), and from then on has its own store, ids, history, journal, snapshots, violations
and chaos. With a state file, each session is a view of the one file, bound to its name.

Looking up a session costs one dict lookup under a lock; everything else happens when a session
is created, expired or deleted.

**Several processes on one state** (``--workers``, PostgreSQL: the engine is ``shared``). Each
process keeps the sessions it has served; the state engine is where they all are:

- a session another process created is loaded from the engine on first use, never made again from
  the fixtures; creating one is one transaction (the first process seeds it, the others load it);
- before a session is used, its store catches up with the engine's change log, and what is not
  about the state comes to ``_event``: its chaos changed, or it was deleted (or expired) elsewhere,
  and then this process lets it go too (a later request is told as if it had been dropped here);
- a session expires only when no process has used it for the TTL: writes record the time in the
  engine, and reads every tenth of the TTL at most (``touch``), and the expiring process checks
  that time in the same transaction that deletes it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from werkzeug.http import parse_cookie

from mockserver.domain.store import LogEntry, State, StateNotSaved, Store
from mockserver.domain.timeutil import format_timestamp, parse_timestamp
from mockserver.server import turns
from mockserver.server.context import Mock, log
from mockserver.server.prefer import Chaos
from mockserver.spec.errors import BadRequest, Gone, NotFound, StoreUnavailable, TooManyRequests
from mockserver.storage.base import Engine

HEADER = "X-Mockserver-Session"
COOKIE = "mockserver_session"
PATH_PREFIX = "/__session/"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit"
CHAOS_FIELDS = ("latency_ms", "error_rate", "seed")
_HEADER_KEY = "HTTP_X_MOCKSERVER_SESSION"
_PREFIX_KEY = "mockserver.session"  # where SessionPrefix leaves the name it took off the path
_EXPIRED_KEPT = 1000  # names of expired sessions remembered, so their next request can be told
_SWEEP_EVERY = 1.0  # seconds between looks for expired sessions


def requested(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(name, where it was given) of the session a request names, or None for the default state."""
    prefixed = environ.get(_PREFIX_KEY)
    header = environ.get(_HEADER_KEY)
    if prefixed is not None:
        if header is not None and header != prefixed:
            raise BadRequest(
                f"the path names session {_shown(prefixed)} and {HEADER} names {_shown(header)}; name one", HEADER
            )
        return prefixed, "path"
    if header is not None:
        return header, HEADER
    cookies = environ.get("HTTP_COOKIE")
    if cookies and COOKIE in cookies:
        value = parse_cookie(cookies).get(COOKIE)
        if value is not None:
            return value, COOKIE
    return None


def check_name(name: str, where: str) -> str:
    """``name``, or a 400 naming ``where`` it came from."""
    if NAME.fullmatch(name) is None:
        raise BadRequest(f"{_shown(name)} is not a session name: use {NAME_RULE}", where)
    return name


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _iso(instant: float) -> str:
    return format_timestamp(datetime.fromtimestamp(instant, UTC))


@dataclass(eq=False)
class Session:
    """One named session: a mock over its own store."""

    name: str
    mock: Mock
    created_at: float
    last_used: float
    chosen: dict[str, Any] = field(default_factory=dict)  # the chaos it chose; the server's for the rest
    file: Engine | None = None
    touched: float = 0.0  # shared: when this process last told the engine it was used


class Sessions:
    """Every named session of one app, bounded in number and dropped after ``ttl`` idle seconds."""

    def __init__(self, base: Mock, file: Engine | None = None, clock: Callable[[], float] = time.time) -> None:
        self.base = base
        self.file = file
        self.shared = file is not None and file.shared
        self.clock = clock
        self.max_sessions = base.settings.max_sessions
        self.ttl = base.settings.session_ttl
        self._lock = threading.Lock()
        self._by_name: dict[str, Session] = {}
        self._expired: OrderedDict[str, float] = OrderedDict()  # name -> when it was dropped
        self._started = clock()  # idle time counts while this process runs
        self._next_sweep = self._started + _SWEEP_EVERY
        # Shared: sessions another process dropped, (session, expired, when), let go at the next look.
        self._gone: deque[tuple[Session, bool, float]] = deque()

    # -- the request path --------------------------------------------------------------------------

    def pick(self, environ: dict[str, Any], api: bool = True) -> Mock:
        """The mock a request works on: its session's, or the default one.

        ``api``: an API request, which may create a session only when there is no control token,
        and which is told (410) when its session expired. Control routes have checked the token.
        """
        found = requested(environ)
        if found is None:
            return self.base
        if self.shared:  # the engine is asked (lookups, uses, expiry): not on the event loop (server/rsgi.py)
            turns.must_not_wait()
        name, where = found
        now = self.clock()
        with self._lock:
            self._settle()
            if now >= self._next_sweep:
                self._sweep(now)
            session = self._by_name.get(name)
            if session is not None and self._is_expired(session, now) and self._expire(session, now):
                session = None
            if session is None:
                # Only a name not seen yet is checked: every session held has a good one.
                session = self._create(check_name(name, where), where, now, api)
            session.last_used = now
            if not self.shared:
                return session.mock
        # Shared: up to date with the other processes (outside the registry's lock: this may wait for the
        # engine); one another process deleted meanwhile is looked up again.
        if self._current(session, now):
            return session.mock
        return self.pick(environ, api)

    def _current(self, session: Session, now: float) -> bool:
        """Shared: catch the session's store up; False when another process dropped the session.

        A read tells the engine the session was used, once a tenth of the TTL at most (a write does
        every time), so that no process expires a session another one keeps using.
        """
        store = session.mock.store
        store.catch_up()
        if store.dropped:
            self._let_go(session)
            return False
        if self.ttl and session.file is not None and now - session.touched >= self.ttl / 10:
            session.touched = now
            try:
                session.file.touch()
            except (StateNotSaved, StoreUnavailable) as exc:  # the request's own work will say so if it matters
                log.warning("session %s: its last use was not recorded (%s)", session.name, exc)
        return True

    def _event(self, session: Session, entry: LogEntry) -> None:
        """A change log row of another process that is not about the state (called outside any lock)."""
        if entry.kind == "chaos":
            session.chosen = dict(entry.data["chaos"])
            session.mock.chaos = self._chaos(session.chosen)
            if session.file is not None:
                session.file.chaos = session.chosen
        elif entry.kind == "dropped":
            self._gone.append((session, bool(entry.data.get("expired")), self.clock()))

    def _settle(self) -> None:
        """Let go of the sessions other processes dropped (under the lock)."""
        while self._gone:
            session, expired, at = self._gone.popleft()
            if self._by_name.get(session.name) is session:
                session.mock.journal.let_go()  # its rows went with it; a session made again keeps its own
                del self._by_name[session.name]
                if expired:
                    self._remember_expired(session.name, at)

    def _adopt(self, name: str, now: float) -> Session | None:
        """Shared: the session another process made, loaded from the engine; None when it has none."""
        if not self.shared or name in self._by_name:
            return self._by_name.get(name)
        assert self.file is not None
        view = self.file.view(name)
        saved = view.load()
        if saved is None:
            return None
        self._expired.pop(name, None)
        return self._new(name, now, view.chaos, view=view, saved=saved)

    def _create(self, name: str, where: str, now: float, api: bool) -> Session:
        adopted = self._adopt(name, now)
        if adopted is not None:
            return adopted
        dropped_at = self._expired.pop(name, None)
        if api and dropped_at is not None:
            raise Gone(
                f"session {name!r} expired after {self.ttl} s without requests (--session-ttl) and its state was "
                f"dropped at {_iso(dropped_at)}; the next request starts it again from the fixtures",
                where,
            )
        if api and self.base.settings.control_token:
            raise NotFound(
                f"no session {name!r} on this mock: with --control-token, sessions are created with "
                f"PUT /__mock/sessions/{name} (or /__mock/sessions/{name}/enter) and the control token",
                where,
            )
        self._make_room(now, where)
        return self._new(name, now, {})

    def _make_room(self, now: float, where: str) -> None:
        if len(self._by_name) < self.max_sessions:
            return
        self._sweep(now)
        if len(self._by_name) < self.max_sessions:
            return
        headers: dict[str, str] = {}
        wait = ""
        if self.ttl and self._by_name:
            idle = max(now - self._idle_since(s) for s in self._by_name.values())
            seconds = max(1, math.ceil(self.ttl - idle))
            headers["Retry-After"] = str(seconds)
            wait = f", or retry in {seconds} s when the longest idle one expires"
        raise TooManyRequests(
            f"this mock holds its maximum of {self.max_sessions} sessions (--max-sessions); delete one with "
            f"DELETE /__mock/sessions/NAME{wait}",
            where,
            headers,
        )

    def _new(
        self,
        name: str,
        now: float,
        chosen: dict[str, Any],
        view: Engine | None = None,
        saved: State | None = None,
    ) -> Session:
        """A session from the fixtures, or (``saved``, through ``view``) as the engine keeps it.

        Shared, without ``saved``: the store seeds the session in the engine unless another process
        has (``store.created``); then it is that one, with its chaos.
        """
        if self.file is not None and view is None:
            view = self.file.view(name)
            view.created_at = _iso(now)
            view.chaos = chosen
        if view is not None:
            view.now = lambda: _iso(self.clock())
        base = self.base
        store = Store(
            base.store.seed,
            clock=base.store.clock,
            persistence=view,
            saved=saved,
            sequential_ids=base.settings.sequential_ids,
        )
        if view is not None and (saved is not None or not store.created):
            chosen = view.chaos
        session = Session(name, base.over(store, self._chaos(chosen), session=name), now, now, dict(chosen), view)
        # Made here, the engine has its time of use; found made elsewhere, the first use here records one.
        session.touched = now if saved is None and store.created else 0.0
        if self.shared:
            store.events = lambda entry: self._event(session, entry)
        self._by_name[name] = session
        return session

    def _chaos(self, chosen: dict[str, Any]) -> Chaos:
        return Chaos(**self.chaos_of(chosen))

    def chaos_of(self, chosen: dict[str, Any]) -> dict[str, Any]:
        """The chaos a session with these choices runs with: the server's, for what it did not choose."""
        settings = self.base.settings
        server = {"latency_ms": settings.latency_ms, "error_rate": settings.error_rate, "seed": settings.seed}
        return {**server, **chosen}

    # -- bounds ------------------------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        if not self.ttl:
            return
        for session in list(self._by_name.values()):
            if self._is_expired(session, now):
                try:
                    self._expire(session, now)
                except (StateNotSaved, StoreUnavailable) as exc:  # not this request's session: try again later
                    log.warning("session %s could not be expired (%s)", session.name, exc)

    def _idle_since(self, session: Session) -> float:
        """When the session was last used, or when this process started if that is later."""
        return max(session.last_used, self._started)

    def _is_expired(self, session: Session, now: float) -> bool:
        """Whether the session has been idle for ``ttl`` seconds (never, without a ttl)."""
        return bool(self.ttl) and now - self._idle_since(session) >= self.ttl

    def _expire(self, session: Session, now: float) -> bool:
        """Drop an idle session; whether it was. Shared: not when another process used it within the
        TTL (the engine says when, in the transaction that would delete it): this one then counts
        from that time."""
        if self.shared and session.file is not None:
            with session.mock.store.exclusive():
                dropped = session.file.drop(idle_before=datetime.fromtimestamp(now - self.ttl, UTC))
            if not dropped:
                used = session.file.last_used()
                session.last_used = max(session.last_used, used.timestamp() if used is not None else now)
                return False
            self._forget(session)
        else:
            self._drop(session)
        self._remember_expired(session.name, now)
        log.info("session %s expired after %d s without requests; its state was dropped", session.name, self.ttl)
        return True

    def _remember_expired(self, name: str, at: float) -> None:
        self._expired[name] = at
        while len(self._expired) > _EXPIRED_KEPT:
            self._expired.popitem(last=False)

    def _drop(self, session: Session) -> None:
        if session.file is not None:
            with session.mock.store.exclusive():  # no write of the session is half-way
                session.file.drop()
        self._forget(session)

    def _forget(self, session: Session) -> None:
        session.mock.journal.close()  # its entries' bytes go back to the budget
        del self._by_name[session.name]

    # -- management --------------------------------------------------------------------------------

    def create(self, name: str, chosen: dict[str, Any]) -> tuple[Session, bool]:
        """The session ``name`` with this chaos (created, or its chaos changed); whether it was created."""
        now = self.clock()
        self._refresh(name, now)
        with self._lock:
            self._settle()
            session = self._by_name.get(name)
            if session is not None and self._is_expired(session, now) and self._expire(session, now):
                session = None
            if session is None:
                self._expired.pop(name, None)
                if self.shared and self.file is not None:  # made, or found made by another process
                    self._make_room(now, "name")
                    session = self._new(name, now, chosen)
                    if session.mock.store.created:
                        return session, True
                else:
                    self._make_room(now, "name")
                    return self._new(name, now, chosen), True
            if session.file is not None:
                with session.mock.store.exclusive():
                    session.file.set_chaos(chosen)
            session.chosen = dict(chosen)
            session.mock.chaos = self._chaos(chosen)
            session.last_used = now
            return session, False

    def get(self, name: str) -> Session | None:
        """The live session of that name (an idle one past its time is dropped first)."""
        now = self.clock()
        self._refresh(name, now)
        with self._lock:
            self._settle()
            self._sweep(now)
            return self._by_name.get(name) or self._adopt(name, now)

    def delete(self, name: str) -> bool:
        now = self.clock()
        self._refresh(name, now)
        with self._lock:
            self._settle()
            session = self._by_name.get(name) or self._adopt(name, now)
            if session is None:
                return False
            self._drop(session)
            self._expired.pop(name, None)
            return True

    def all(self) -> list[Session]:
        """Every live session, by name (shared: every process's)."""
        now = self.clock()
        saved = []
        if self.shared and self.file is not None:
            for name in [s.name for s in list(self._by_name.values())]:
                self._refresh(name, now)
            saved = self.file.sessions()
        with self._lock:
            self._settle()
            self._sweep(now)
            if self.shared:
                for found in saved:
                    self._adopt(found.name, now)
            return sorted(self._by_name.values(), key=lambda s: s.name)

    def _refresh(self, name: str, now: float) -> None:
        """Shared: the session held under that name, caught up (so one dropped elsewhere is let go)."""
        session = self._by_name.get(name) if self.shared else None
        if session is not None:
            session.mock.store.catch_up()
            if session.mock.store.dropped:
                self._let_go(session)

    def _let_go(self, session: Session) -> None:
        """A session another process dropped: no longer held here (its ``dropped`` row said how)."""
        with self._lock:
            self._settle()
            if self._by_name.get(session.name) is session:
                session.mock.journal.let_go()
                del self._by_name[session.name]

    def __len__(self) -> int:
        return len(self._by_name)

    def describe(self, session: Session) -> dict[str, Any]:
        """A session as the control API shows it."""
        mock = session.mock
        with mock.store.atomic() as state:
            counts = state.counts()
        expires = self._idle_since(session) + self.ttl if self.ttl else None
        return {
            "name": session.name,
            "created_at": _iso(session.created_at),
            "last_used": _iso(session.last_used),
            "expires_at": _iso(expires) if expires is not None else None,
            "records": counts,
            "snapshots": len(mock.store.named()),
            "journal": len(mock.journal),
            "violations": len(mock.violations),
            "chaos": self.chaos_of(session.chosen),
        }

    # -- start and reloads -------------------------------------------------------------------------

    def load_saved(self) -> int:
        """Bring back every session the state file keeps; how many."""
        if self.file is None:
            return 0
        with self._lock:
            for saved in self.file.sessions():
                created = _instant(saved.created_at, self._started)
                view = self.file.view(saved.name)
                state = view.load()
                if state is None:  # deleted by another process meanwhile
                    continue
                session = self._new(saved.name, created, saved.chaos, view=view, saved=state)
                session.last_used = _instant(saved.last_used, created)
            if len(self._by_name) > self.max_sessions:
                log.warning(
                    "the state file holds %d sessions, more than --max-sessions %d: all are kept; "
                    "no new one can start until some are deleted or expire",
                    len(self._by_name),
                    self.max_sessions,
                )
            return len(self._by_name)

    def rebind(self) -> None:
        """After a spec reload: every session's operations read the new spec (their state is kept)."""
        with self._lock:
            for session in self._by_name.values():
                old = session.mock
                session.mock = self.base.over(old.store, old.chaos, old.journal, old.violations, session.name)

    def reseed(self, seed: State) -> None:
        """After a fixture reload: what each session's reset goes back to (new sessions copy it anyway)."""
        with self._lock:
            for session in self._by_name.values():
                session.mock.store.seed = seed


def _instant(text: str, default: float) -> float:
    try:
        return parse_timestamp(text).timestamp()
    except ValueError:
        return default


class SessionPrefix:
    """WSGI middleware: ``/__session/NAME/rest`` is ``/rest`` in session NAME.

    The routes (and the validators, which match paths against the spec's servers) see the path they
    know; a ``Location`` the mock answers gets the prefix back, so a client that follows it stays in
    its session.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PATH_PREFIX):
            return self.app(environ, start_response)
        name, _, rest = path[len(PATH_PREFIX) :].partition("/")
        root = PATH_PREFIX + name
        environ[_PREFIX_KEY] = name
        environ["PATH_INFO"] = "/" + rest

        def kept(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            moved = [
                (key, root + value if key.lower() == "location" and value[:1] == "/" != value[1:2] else value)
                for key, value in headers
            ]
            return start_response(status, moved, exc_info)

        return self.app(environ, kept)


def current_sessions() -> Sessions:
    """The sessions of the app handling the current request."""
    return current_app.extensions["mockserver.sessions"]  # type: ignore[no-any-return]


def sessions_if_any() -> Sessions | None:
    """The sessions of the app handling the current request; None for an app without (the proxy)."""
    return current_app.extensions.get("mockserver.sessions")
