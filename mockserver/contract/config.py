"""The Schemathesis configuration of a contract run, for ``st run`` (TOML) and for pytest (a dict)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from mockserver.contract.safety import profile_collection
from mockserver.spec.document import Spec

# Create, update and clone refuse some schema-valid bodies with 400 because of rules a schema cannot
# state (a past next_rotation_at, an interval string outside 1h..365d, a padded clone name, a repeated
# provider; see docs/behaviour.md). Everywhere else a 400 for valid data is a failure.
RULE_BOUND_OPERATIONS = (
    "createAccessProfile",
    "updateAccessProfile",
    "cloneAccessProfile",
    "attachRolesToAccessProfile",  # a role id must exist
)
RULE_BOUND_STATUSES = ["2xx", "400", "401", "403", "404", "409"]
# A 503 says the deployment's state store could not be reached (state_store_unavailable): a documented
# answer of every operation, not a broken contract, so not_a_server_error lets it pass (its body is
# still checked against the spec); the run reports it as incomplete instead (hooks.after_call). Any
# other 5xx stays a failure.
SERVER_ANSWER_STATUSES = ["2xx", "3xx", "4xx", "503"]
# Methods the spec does not define are sent to check for 405. These cannot change anything.
UNDEFINED_SAFE_METHODS = ["options", "trace"]


def schemathesis_settings(spec: Spec, *, read_only: bool = False) -> dict[str, Any]:
    """Settings for Schemathesis's ``Config.from_dict`` (and, as TOML, for ``st run``)."""
    # Only below /{profile_id} of a profile collection can a run aim a change at a profile of its
    # own; everywhere else (the collections, the audit trail, users' copies) a method the spec
    # does not define is sent only if it changes nothing.
    operations = spec.operations.values()
    unowned_operations = sorted(op.operation_id for op in operations if profile_collection(op.path) is None)
    rule_bound = sorted(op.operation_id for op in operations if op.canonical_id in RULE_BOUND_OPERATIONS)
    settings: dict[str, Any] = {
        # A run in which every answer is 401 fails instead of passing quietly.
        "warnings": {"fail-on": ["missing_auth"]},
        # Replaying requests cached by an earlier run would bypass this run's choice of targets, and
        # examples kept from earlier runs would make a run depend on its working directory: a run is
        # reproduced by its --seed alone, and writes nothing but its reports.
        "cache": {"enabled": False},
        "generation": {"database": "none"},
        "checks": {"not_a_server_error": {"expected-statuses": SERVER_ANSWER_STATUSES}},
        # Hide credentials, not body fields such as token_max_limit, so reproductions stay exact.
        "output": {
            "sanitization": {
                "keys-to-sanitize": ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"],
                "sensitive-markers": ["authorization", "password", "secret", "cookie"],
            }
        },
        "operations": [
            {
                "include-operation-id": rule_bound,
                "checks": {"positive_data_acceptance": {"expected-statuses": RULE_BOUND_STATUSES}},
            },
            # A PUT, PATCH or DELETE that a server wrongly accepts there could touch data of others.
            {
                "include-operation-id": unowned_operations,
                "phases": {"coverage": {"unexpected-methods": UNDEFINED_SAFE_METHODS}},
            },
        ],
    }
    if read_only:
        settings["phases"] = {"coverage": {"unexpected-methods": UNDEFINED_SAFE_METHODS}}
    return settings


def to_toml(data: Mapping[str, Any]) -> str:
    """A TOML document for plain settings: tables, arrays of tables, strings, numbers, booleans, lists."""
    lines = [f"{key} = {_value(value)}" for key, value in _dotted(data) if not _is_table_array(value)]
    for name, value in data.items():
        if _is_table_array(value):
            for entry in value:
                lines += ["", f"[[{name}]]"] + [f"{key} = {_value(item)}" for key, item in _dotted(entry)]
    return "\n".join(lines) + "\n"


def _dotted(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return json.dumps(value)
