"""``mockserver diff``: does the mock still behave like the deployment? The same requests to both, compared.

- ``run``: the command: preflight, the in-process mock, the tour on each path family, generated
  sequences, cleanup, exit code.
- ``tour``: the fixed tour, one step each (data); ``stateful``: sequences Schemathesis generates.
- ``walk``: sends a step to both sides; ``compare``: normal forms and their differences.
- ``report``: the terminal summary, ``report.md`` and ``junit.xml``.

It sits with the entry points: it builds the mock (``server.app.create_app``) and reaches the
deployment as ``mockserver contract`` does (``contract.http``, ``contract.safety``, its cleanup and
signal handling). It never imports the domain: it sees both sides only through HTTP. Schemathesis
is imported only by ``stateful``, when a run asks for generated sequences.
"""
