"""JSON Schema errors as (field path, message) pairs a person can act on."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
_MAX_SHOWN = 60
# Keywords whose generic message says little; a schema's ``x-error-message`` replaces it.
_EXPLAINED_BY_HINT = frozenset({"pattern", "const", "anyOf", "oneOf", "not"})


def field_path(parts: Iterable[Any], prefix: str = "") -> str:
    """``['provider_configs', 3, 'budgets']`` -> ``provider_configs[3].budgets``."""
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(error: ValidationError, prefix: str = "") -> tuple[str, str]:
    """The field at fault and what was expected there, for one (possibly composite) error."""
    from jsonschema.exceptions import best_match

    if error.context:
        # oneOf/anyOf: the branch that matched the value's type explains best (e.g. a bad enum
        # inside rate_limit rather than "not null").
        error = best_match([error])
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(missing[0])
    hint = _hint(error) if error.validator in _EXPLAINED_BY_HINT else None
    message = f"{hint}; got {shown(error.instance)}" if hint else _message(error)
    return field_path(path, prefix) or prefix or "body", message


def summarise(problems: Sequence[tuple[str, str]]) -> tuple[str, str | None]:
    """One message listing every problem, and the param when a single field is at fault."""
    message = "; ".join(f"{path}: {text}" for path, text in problems)
    fields = {path for path, _ in problems}
    return message, fields.pop() if len(fields) == 1 else None


def shown(value: Any) -> str:
    """A short JSON rendering of a value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return str(_JSON_TYPES.get(type(value), type(value).__name__))


def _message(error: ValidationError) -> str:
    v, expected, got = error.validator, error.validator_value, error.instance
    if v == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"expected {' or '.join(kinds)}, got {json_type(got)} {shown(got)}"
    if v == "enum":
        return f"expected one of {', '.join(map(str, expected))}; got {shown(got)}"
    if v == "const":
        return f"expected {shown(expected)}, got {shown(got)}"
    if v in ("maxLength", "minLength"):
        bound = "at most" if v == "maxLength" else "at least"
        return f"expected {bound} {expected} characters, got {len(got)}"
    if v in ("maxItems", "minItems"):
        bound = "at most" if v == "maxItems" else "at least"
        return f"expected {bound} {expected} items, got {len(got)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"expected a value {sign} {expected}, got {shown(got)}"
    if v == "pattern":
        return f"{shown(got)} does not match the pattern {expected}"
    if v == "format":
        return f"expected a {expected} value, got {shown(got)}"
    if v == "required":
        return "this field is required"
    if v == "additionalProperties":
        extra = sorted(set(got) - set(error.schema.get("properties", {})))
        return f"unknown field(s) {', '.join(extra)}; this object accepts only the documented fields"
    text = str(error.message)
    return text if len(text) <= 2 * _MAX_SHOWN else text[: 2 * _MAX_SHOWN - 3] + "..."


def _hint(error: ValidationError) -> str | None:
    """A schema's own explanation (``x-error-message``), on the failing subschema or a parent."""
    node: ValidationError | None = error
    while node is not None:
        schema = node.schema if isinstance(node.schema, dict) else {}
        if "x-error-message" in schema:
            return str(schema["x-error-message"])
        node = node.parent
    return None
