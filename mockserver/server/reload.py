"""Hot reload: an edit of the spec or of the fixture file applies without a restart, state kept.

- The spec: routes, validation and the rules' limits switch to the new document; the state stays.
- The fixtures: they become what ``POST /__mock/reset`` (or ``--fresh``) goes back to; the current
  state stays until then.

An edit that does not load (invalid YAML, a spec the fixtures break, a broken fixture) keeps the
old version, and the log says why.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from mockserver.domain.fixtures import FixtureError, load_seed
from mockserver.server.app import load_spec
from mockserver.server.context import operations
from mockserver.server.routes import check_handlers
from mockserver.spec.document import SpecError
from mockserver.spec.validation import Validator

log = logging.getLogger("mockserver")


class Reloader:
    """Looks at the spec and fixture files every ``interval`` seconds."""

    def __init__(self, app: Any, interval: float = 0.5) -> None:
        self.mock = app.extensions["mockserver"]
        self.sessions = app.extensions["mockserver.sessions"]
        self.interval = interval
        self._seen = {path: _mtime(path) for path in self._paths()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mockserver-reload", daemon=True)

    def start(self) -> Reloader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> list[str]:
        """Apply what changed since the last look; one log message per file."""
        messages = []
        for path in self._paths():
            mtime = _mtime(path)
            if mtime == self._seen.get(path):
                continue
            self._seen[path] = mtime
            is_spec = path == self._paths()[0]
            try:
                message = self._reload_spec(path, mtime) if is_spec else self._reload_fixtures(path)
                log.info(message)
            except (SpecError, FixtureError, OSError) as exc:
                message = f"{path} changed but was not loaded; the previous version stays in use: {exc}"
                log.error(message)
            messages.append(message)
        return messages

    def _paths(self) -> list[Path]:
        settings = self.mock.settings
        return [settings.spec.resolve(), settings.fixtures.resolve()]

    def _reload_spec(self, path: Path, mtime: int | None) -> str:
        spec = load_spec(path, mtime or 0)
        check_handlers(spec)
        store = self.mock.store
        load_seed(self.mock.settings.fixtures, spec, store.clock)  # the fixtures must still fit
        validator = Validator(spec, self.mock.settings.max_body_bytes, self.mock.validator.mode)
        validator.report = self.mock.validator.report
        # Swap everything that reads the spec; requests already running finish with the old one.
        for name, bound in operations(store, spec).items():
            setattr(self.mock, name, bound)
        self.mock.validator = validator
        self.mock.spec = spec
        self.sessions.rebind()
        return f"spec reloaded from {path}: {len(spec.operations)} operations; the state is kept"

    def _reload_fixtures(self, path: Path) -> str:
        store = self.mock.store
        store.seed = load_seed(path, self.mock.spec, store.clock)
        self.sessions.reseed(store.seed)
        return f"fixtures reloaded from {path}; POST /__mock/reset to start from them (the state is kept until then)"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
