"""What the API does, as plain Python: the state and the rules of every operation.

- ``store``: ``State``, its lock, ``reset`` / ``snapshot`` / ``restore``; and the interface a store
  asks of its storage (``Persistence``, ``HistoryLog``, ``Changes``), which ``mockserver.storage``
  implements and re-exports (``storage.base``).
- ``profiles``, ``copies``, ``roles``, ``history``: the operations on profiles, users' copies and
  their keys, role attachments, versions and the audit trail.
- ``auth``: credentials to an ``Identity``; 401 and 403.
- ``timeutil``: Go durations and RFC 3339 timestamps.
- ``fixtures``: seed and API-key files, checked against the spec.

May import: ``spec`` (limits, schemas, the error tree); never ``storage``, which sits above it.
Never HTTP: no Flask, werkzeug or waitress, and never Schemathesis. It takes and returns plain data,
so it is tested without a request.
"""
