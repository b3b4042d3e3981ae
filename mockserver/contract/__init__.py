"""A deployment seen through HTTP and the spec: ``mockserver contract`` and ``mockserver record``.

- ``runner``: the command: preflight, one Schemathesis pass per path family, cleanup, exit code.
- ``record``: ``mockserver record``, a deployment read with GET requests into a fixture file.
- ``session``: one run's state; ``safety``: what a run may change and the guard that enforces it.
- ``hooks`` and ``checks``: what is registered with Schemathesis; ``rules``: the profile rules over JSON.
- ``http``: the run's own requests; ``config``: Schemathesis settings; ``results`` and ``report``.
- ``signals``: Ctrl-C and SIGTERM stop a run, never its cleanup (``mockserver diff`` uses it too).

May import: ``spec`` (the document; ``record`` also its schema checks and messages) and
``resources``. Never the mock's domain or server: it sees a deployment only through HTTP (a
recorded file is proven to load by the CLI, which may import both). Schemathesis is imported
only by ``runner`` (when the run starts), ``hooks`` and ``checks``.
"""
