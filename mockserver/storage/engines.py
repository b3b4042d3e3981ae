"""Which engine keeps the state: ``open_state(settings)``, the one place that chooses.

- ``--state PATH``: the SQLite file (``sqlite.SqliteState``); with ``--workers N`` (N > 1) the workers
  share it (``shared``), their parent holding its lock (``sqlite_file.hold``), and ``--fresh`` is
  the parent's to apply, once, before any worker opens the file.
- ``--state postgresql://...``: PostgreSQL (``postgresql.PostgresState``), always shared; psycopg is
  imported only then, so a mock without a URL never loads it.
- neither: None, the state in memory (a ``Store`` without a persistence).
"""

from __future__ import annotations

import importlib

from mockserver.settings import Settings
from mockserver.storage.base import Engine
from mockserver.storage.sqlite import SqliteState


def shared_file(settings: Settings) -> bool:
    """Whether several processes share the SQLite file of ``settings`` (``--workers`` above 1)."""
    return settings.state is not None and settings.workers > 1


def open_state(settings: Settings) -> Engine | None:
    """The engine of ``settings``' state, opened and its layout prepared; None for a state in memory."""
    if settings.state_url is not None:
        # Imported here: psycopg is loaded only by a mock whose state is in PostgreSQL.
        postgresql = importlib.import_module("mockserver.storage.postgresql")
        engine: Engine = postgresql.PostgresState(settings.state_url, fresh=settings.fresh, instance=settings.instance)
        return engine
    if settings.state is not None:
        shared = shared_file(settings)
        return SqliteState(settings.state, fresh=settings.fresh and not shared, shared=shared)
    return None
