"""The contract: the OpenAPI document, the ``BifrostError`` envelope it defines, and checking messages against it.

- ``document``: loading and linting the spec; operations, routes, limits and schema helpers.
- ``errors``: the exception tree, its status table and the error body.
- ``messages``: JSON Schema errors turned into a field path and a readable message.
- ``jsontext``: compact JSON, as answers, history rows and the state file hold it (orjson).
- ``fastcheck``: compiled jsonschema-rs validators per operation (the fast path).
- ``reference``: openapi-core, the validator of record, and its error messages.
- ``validation``: the seam between the two engines: body reading, modes, answers checked.

May import: ``settings`` and ``resources``. Never the domain, the server or the contract runner,
never Flask or Schemathesis (werkzeug's request and response types are the validators' input).
"""
