"""Where the mock's state is kept: one interface, one module per engine.

- ``base``: the interface a ``Store`` calls (``Persistence``, ``HistoryLog``, ``Changes``, ``LogEntry``,
  ``StateNotSaved``), defined by the domain and taken from here by engines and their callers; and
  ``Engine``, what the sessions registry asks of an engine besides (a session's view, the sessions kept).
- ``engines``: ``open_state(settings)``, the one place that picks the engine; psycopg is imported only
  for a ``postgresql://`` URL.
- ``sqlite``: ``--state PATH``, the state in a SQLite file (``SqliteState``, a session's view of the
  file; ``SqliteHistory``, versions and audit rows read from it).
- ``sqlite_file``: that file itself (``StateFile``): its layout and migrations, its owner lock
  (``flock``; ``hold`` takes it for a ``--workers`` parent whose workers then share the file), one
  writing connection and a read-only connection per thread.
- ``postgresql``: ``--state postgresql://...`` (``PostgresState``, ``PostgresHistory``): the state any
  number of mocks share, its layout in ``sql/postgresql/schema.sql``.
- ``history``: versions and audit rows read from a database (``DatabaseHistory``), the same class for
  both engines, which differ only in their SQL's parameter marker.
- ``shared_log``: the journal's and the violations' rows of a shared state, written and read by every
  instance (``SqliteLog``, ``PostgresLog``).

**A shared state** (PostgreSQL, or the SQLite file of ``--workers``) keeps a change log per session:
each write appends its row in the transaction that saves it, under the session's write lock (an
advisory lock in PostgreSQL, ``BEGIN IMMEDIATE`` in SQLite), and every process applies the rows it
has not seen before it answers. The log is the single order of a session's writes.

Without ``--state`` the state is in memory: a ``Store`` without a persistence, its history a
``MemoryHistory`` (see ``base``).

May import: ``domain``, ``spec``, ``settings``, ``resources``. Never HTTP (no Flask, werkzeug,
waitress or requests) and never the server, the contract runner or diff: the server calls it.
"""
