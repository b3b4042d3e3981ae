"""The mock on HTTP: the Flask app, its WSGI edge, the control routes, serving and the proxy.

- ``app``: ``create_app(settings)``, the one place that wires the mock.
- ``routes``: the API's WSGI entry and dispatch table; ``context``: ``Mock``, the per-app state.
- ``control``: ``/__mock/*`` and ``/openapi.json``; ``docs_page``: ``/docs``; ``inspector``: the page at
  ``/__mock/`` (its files in ``inspector_files/``); ``banner``: what ``mockserver serve`` prints at start.
- ``sessions``: isolated sessions (which one a request names, their bounds); ``session_views``:
  ``/__mock/sessions``.
- ``prefer``: ``Prefer`` and chaos; ``cors``: the CORS middleware; ``journal``: the request journal.
- ``reload``: watching the spec and fixture files. The state's engines (``--state``) are in
  ``mockserver.storage``; ``persistence`` is an alias of ``storage.sqlite`` until ``bench/bench.py``
  imports that instead.
- ``serving``: waitress in the foreground or on a thread; ``forked``: granian, the app in a forked
  worker (``--server granian``); ``logs``: log lines written by a thread of their own.
- ``proxy``: ``mockserver proxy``, the same checks on traffic to a real deployment; ``traffic``: what
  the spec says of a request and an upstream answer; ``upstream``: forwarding with requests.

May import: ``storage``, ``domain``, ``spec``, ``settings``, ``resources``. The only package that imports Flask.
Never the contract runner. (The proxy uses the domain only for the mock's credential rules.)
"""
