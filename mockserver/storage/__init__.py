"""Where the mock's state is kept: one interface, one module per engine.

- ``base``: the interface a ``Store`` calls (``Persistence``, ``HistoryLog``, ``Changes``,
  ``StateNotSaved``), defined by the domain and taken from here by engines and their callers.
- ``sqlite``: ``--state PATH``, the state in a SQLite file (``SqliteState``, a session's view of the
  file; ``SqliteHistory``, versions and audit rows read from it).
- ``sqlite_file``: that file itself (``StateFile``): its layout and migrations, its owner lock
  (``flock``), one writing connection and a read-only connection per thread.
- ``postgresql``: PostgreSQL's layout (``sql/postgresql/schema.sql``) and ``prepare``, which creates or
  checks it; not served yet (``--state postgresql://`` is refused at start).

Without ``--state`` the state is in memory: a ``Store`` without a persistence, its history a
``MemoryHistory`` (see ``base``).

May import: ``domain``, ``spec``, ``settings``, ``resources``. Never HTTP (no Flask, werkzeug,
waitress or requests) and never the server, the contract runner or diff: the server calls it.
"""
