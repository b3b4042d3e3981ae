"""Compiled validators (jsonschema-rs) for every operation of the spec: the fast path of validation.

The fast path only ever says "this keeps the contract". Whenever it is not certain (a schema error,
a parameter written in a form it does not parse), the caller asks openapi-core, which stays the
validator of record and writes the error messages. tests/test_fastcheck.py checks that the two
agree over Schemathesis-generated requests and over mutated responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

import jsonschema_rs
from rfc3339_validator import validate_rfc3339  # type: ignore[import-untyped]

from mockserver.spec.document import Operation, Spec
from mockserver.spec.messages import describe

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_INTEGER = re.compile(r"[-+]?[0-9]{1,4300}", re.ASCII)
# openapi-core's int32/int64 formats as bounds, which jsonschema-rs checks natively. Bounds are at
# least as strict as the format checks (they also apply to floats), so the fast path can only say
# "not sure" more often, never "valid" where openapi-core would not.
_INTEGER_FORMATS = {"int32": 2**31, "int64": 2**63}
Validator = Any  # a compiled jsonschema_rs validator


@lru_cache(maxsize=65536)
def _rfc3339(value: str) -> bool:
    # openapi-core's date-time check (jsonschema's) upper-cases the value first. jsonschema-rs's own
    # date-time check is not the same: it accepts leap seconds and the year 0000. Answers repeat
    # the same stored timestamps, hence the cache.
    return bool(validate_rfc3339(value.upper()))


@dataclass(frozen=True)
class _Parameter:
    location: str
    name: str
    kind: str | None
    required: bool
    allow_empty: bool
    validator: Validator


@dataclass(frozen=True)
class _RequestPlan:
    parameters: tuple[_Parameter, ...]
    body: Validator | None


@dataclass(frozen=True)
class _ResponsePlan:
    media_types: tuple[str, ...]
    body: Validator | None
    headers: tuple[tuple[str, bool, Validator], ...]


class FastChecks:
    """Per-operation validators compiled once from the spec."""

    def __init__(self, spec: Spec) -> None:
        self._components = _with_integer_bounds(spec.document.get("components", {}))
        self._formats = _formats(spec.document)
        self._spec = spec
        self._compiled: dict[str, Validator] = {}
        self._requests = {op_id: self._request_plan(op) for op_id, op in spec.operations.items()}
        self._responses = {op_id: self._response_plans(op) for op_id, op in spec.operations.items()}

    # -- requests ---------------------------------------------------------------------------------

    def request(
        self, operation: Operation, path: Mapping[str, str], args: Any, body: Any, has_body: bool
    ) -> tuple[dict[str, Any], dict[str, Any]] | Verdict:
        """Typed (path, query) parameters when the request keeps the contract; otherwise ``INVALID``
        (a schema refuses it) or ``UNSURE`` (a form the fast path does not decide, e.g. ``?x=yes``)."""
        plan = self._requests[operation.operation_id]
        typed: dict[str, dict[str, Any]] = {"path": {}, "query": {}}
        for param in plan.parameters:
            if param.location == "path":
                raw = path.get(param.name)
            elif param.location == "query":
                values = args.getlist(param.name)
                if len(values) > 1:
                    return UNSURE
                raw = values[0] if values else None
            else:
                return UNSURE
            if raw is None:
                if param.required:
                    return UNSURE
                continue
            if raw == "" and not param.allow_empty:
                return UNSURE
            value = _cast(param.kind, raw)
            if isinstance(value, Verdict):
                return value
            if not param.validator.is_valid(value):
                return INVALID
            typed[param.location][param.name] = value
        if plan.body is not None and has_body and not plan.body.is_valid(body):
            return INVALID
        return typed["path"], typed["query"]

    # -- responses --------------------------------------------------------------------------------

    def response_ok(
        self, operation: Operation, status: int, media_type: str, headers: Mapping[str, str], payload: Any
    ) -> bool:
        """Whether an answer (status, JSON payload before serialisation, headers) keeps the contract."""
        plans = self._responses[operation.operation_id]
        plan = plans.get(str(status)) or plans.get(f"{str(status)[0]}XX") or plans.get("default")
        if plan is None:
            return False
        if plan.media_types and media_type not in plan.media_types:
            return False
        if plan.body is not None and not plan.body.is_valid(payload):
            return False
        for name, required, validator in plan.headers:
            value = headers.get(name)
            if value is None:
                if required:
                    return False
            elif not validator.is_valid(value):
                return False
        return True

    # -- compiling --------------------------------------------------------------------------------

    def _compile(self, schema: Mapping[str, Any]) -> Validator:
        # Many responses share a schema (every error is a BifrostError): compile each one once.
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            self._compiled[key] = _compile(schema, self._components, self._formats)
        return self._compiled[key]

    def _request_plan(self, operation: Operation) -> _RequestPlan:
        item = self._spec.document["paths"][operation.path]
        raw = item[operation.method.lower()]
        params = [self._resolve(p) for p in item.get("parameters", []) + raw.get("parameters", [])]
        parameters = tuple(
            _Parameter(
                location=p["in"],
                name=p["name"],
                kind=self._spec.resolve(p.get("schema", {})).get("type"),
                required=bool(p.get("required")),
                allow_empty=bool(p.get("allowEmptyValue")),
                validator=self._compile(p.get("schema", {})),
            )
            for p in params
        )
        body = None
        if "requestBody" in raw:
            content = self._resolve(raw["requestBody"]).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            body = self._compile(schema) if schema is not None else None
        return _RequestPlan(parameters, body)

    def _response_plans(self, operation: Operation) -> dict[str, _ResponsePlan]:
        raw = self._spec.document["paths"][operation.path][operation.method.lower()]
        plans = {}
        for status, response in raw.get("responses", {}).items():
            response = self._resolve(response)
            content = response.get("content", {})
            schema = content.get("application/json", {}).get("schema")
            headers = tuple(
                (name, bool(header.get("required")), self._compile(header.get("schema", {})))
                for name, header in ((n, self._resolve(h)) for n, h in response.get("headers", {}).items())
            )
            plans[str(status).upper()] = _ResponsePlan(
                media_types=tuple(content),
                body=self._compile(schema) if schema is not None else None,
                headers=headers,
            )
        return plans

    def _resolve(self, node: Mapping[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self._spec.document
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return dict(node)


@lru_cache(maxsize=8)
def for_spec(spec: Spec) -> FastChecks:
    """The compiled checks of a spec, built once per process (apps built from one spec share them)."""
    return FastChecks(spec)


def schema_validator(spec: Spec, name: str) -> Validator:
    """A compiled validator for one schema of ``components.schemas``."""
    components = _with_integer_bounds(spec.document.get("components", {}))
    return _compile({"$ref": f"#/components/schemas/{name}"}, components, _formats(spec.document))


def first_problem(spec: Spec, schema_name: str, value: Any) -> tuple[str, str] | None:
    """The first problem of a value that a schema of ``components.schemas`` refuses, as openapi-core's
    schema validator words it (field, message); None when it finds none. Slow: for messages only."""
    from openapi_schema_validator import OAS31Validator

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec.document["components"]}
    validator = OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return describe(errors[0]) if errors else None


def _compile(schema: Mapping[str, Any], components: Any, formats: dict[str, Callable[[str], bool]]) -> Validator:
    document = {"$schema": _DRAFT, **_with_integer_bounds(dict(schema)), "components": components}
    return jsonschema_rs.validator_for(document, validate_formats=True, formats=formats)


class Verdict(Enum):
    """What the fast path says when it does not accept a request."""

    INVALID = "invalid"
    UNSURE = "unsure"


INVALID = Verdict.INVALID
UNSURE = Verdict.UNSURE


def _cast(kind: str | None, raw: str) -> Any:
    """A parameter value as openapi-core would cast it, for the forms the fast path is sure about."""
    if kind == "string":
        return raw
    if kind == "integer":
        return int(raw) if _INTEGER.fullmatch(raw) else UNSURE
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, UNSURE)
    return UNSURE


def _with_integer_bounds(node: Any) -> Any:
    """A copy where ``format: int32/int64`` also carries the matching minimum and maximum."""
    if isinstance(node, dict):
        out = {k: _with_integer_bounds(v) for k, v in node.items()}
        fmt = out.get("format")
        limit = _INTEGER_FORMATS.get(fmt) if isinstance(fmt, str) else None
        if limit is not None:
            out["minimum"] = max(out.get("minimum", -limit), -limit)
            out["maximum"] = min(out.get("maximum", limit - 1), limit - 1)
        return out
    if isinstance(node, list):
        return [_with_integer_bounds(v) for v in node]
    return node


# Formats openapi-core's checker may know (JSON Schema 2020-12 and OpenAPI); others, such as the
# spec's `uint`, are unknown to both validators and pass.
_KNOWN_FORMATS = frozenset(
    "date-time date time duration email idn-email hostname idn-hostname ipv4 ipv6 uri uri-reference iri "
    "iri-reference uuid uri-template json-pointer relative-json-pointer regex float double password byte "
    "binary".split()
)


def _formats(document: Mapping[str, Any]) -> dict[str, Callable[[str], bool]]:
    """String formats the spec uses, checked the way openapi-core checks them."""
    used = {value for value in _walk_formats(document) if value in _KNOWN_FORMATS}
    formats: dict[str, Callable[[str], bool]] = {}
    for name in used:
        if name == "date-time":
            formats[name] = _rfc3339
            continue
        from openapi_schema_validator import OAS31Validator

        checker = OAS31Validator.FORMAT_CHECKER
        if name in checker.checkers:
            formats[name] = _checker_function(checker, name)
    return formats


def _checker_function(checker: Any, name: str) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return bool(checker.conforms(value, name))

    return check


def _walk_formats(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("format"), str):
                found.append(item["format"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
