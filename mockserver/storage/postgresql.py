"""The state in PostgreSQL (``--state postgresql://...``, issue 24): so far, its layout only.

Not served yet: ``--state postgresql://`` is refused at start (``settings.state_path``). What is here
is what the engine will stand on:

- ``sql/postgresql/schema.sql``: the SQLite file's tables, column for column, plus the change log
  (``changes``) and ``layout_versions``. Later layouts come as ``sql/postgresql/migrations/N.sql``,
  each moving the layout from N-1 to N.
- ``prepare``: creates the layout in an empty database, or checks the one it finds, in one
  transaction under an advisory lock, so that instances starting together on an empty database
  create it once and the others wait, then find it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

LAYOUT_VERSION = 1
# pg_advisory_xact_lock's key for creating or migrating the layout: any fixed number, the same in every
# instance ("mocksrvr" in ASCII, as an integer).
LAYOUT_LOCK = int.from_bytes(b"mocksrvr", "big") & 0x7FFF_FFFF_FFFF_FFFF


class LayoutError(Exception):
    """A database whose layout the mock cannot use."""


def schema_sql() -> str:
    """The statements that create the layout, ``LAYOUT_VERSION``, in an empty database."""
    return (resources.files("mockserver.storage") / "sql" / "postgresql" / "schema.sql").read_text(encoding="utf-8")


def layout_version(db: psycopg.Connection[Any]) -> int | None:
    """The layout the database holds; None when it holds none (no ``layout_versions`` table)."""
    table = db.execute("SELECT to_regclass('layout_versions')").fetchone()
    if table is None or table[0] is None:
        return None
    found = db.execute("SELECT max(version) FROM layout_versions").fetchone()
    return None if found is None or found[0] is None else int(found[0])


def prepare(db: psycopg.Connection[Any]) -> int:
    """Create the layout in an empty database or check the one there; the layout version.

    ``LayoutError`` when the database holds another layout (a newer mock's, or an unknown one).
    """
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LAYOUT_LOCK,))
        version = layout_version(db)
        if version is None:
            db.execute(schema_sql().encode())  # no parameters: the whole script in one simple query
            version = layout_version(db)
    if version != LAYOUT_VERSION:
        raise LayoutError(
            f"the database holds mockserver's layout {version}, and this mock knows layout {LAYOUT_VERSION}: "
            "use a mock of that version, or another database"
        )
    return version
