"""The OpenAPI document: loaded and checked once per process, indexed for routing and rules."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The current path family; operations elsewhere are deprecated aliases of one of its operations.
CANONICAL_PREFIX = "/api/governance/"
_REF_PREFIX = "#/components/schemas/"


class SpecError(Exception):
    """The spec cannot be served: it is invalid, or it lacks what the mock relies on."""


@dataclass(frozen=True)
class Operation:
    """One operation of the spec, with what the mock needs to serve it."""

    operation_id: str
    method: str
    path: str
    permission: str
    # The canonical operation a deprecated alias stands for (itself for canonical operations).
    canonical_id: str
    body_media_types: tuple[str, ...]
    body_required: bool
    deprecated: bool
    # (location, name) of the parameters whose schema type is integer.
    integer_parameters: tuple[tuple[str, str], ...] = ()
    # The HTTP authentication schemes the operation accepts (``bearer``, ``basic``), from its
    # ``security`` or else the document's.
    schemes: tuple[str, ...] = ("bearer", "basic")

    @property
    def is_alias(self) -> bool:
        """Whether this is a deprecated alias of another operation of the document."""
        return self.canonical_id != self.operation_id


@dataclass(frozen=True)
class PageSize:
    """The page size a list answers with, from the ``limit`` parameter's ``x-bifrost-page-size``."""

    default: int
    maximum: int

    def limit(self, sent: int | None) -> int:
        """The limit a list answers with for the ``limit`` sent (decision 11)."""
        return self.default if sent is None or sent <= 0 else min(sent, self.maximum)


@dataclass(frozen=True)
class Route:
    """A path template of the spec and the operations defined on it, by upper-case method."""

    template: str
    pattern: re.Pattern[str]
    operations: dict[str, Operation]

    @property
    def allow(self) -> str:
        return ", ".join(sorted(self.operations))


class Spec:
    """The loaded document. Build it once per process (it validates the whole document)."""

    def __init__(self, document: dict[str, Any], source: str = "<dict>") -> None:
        self.source = source
        self.document = document
        _lint(document, source)
        self.operations = _index_operations(document, source)
        # Literal templates first, then fewer parameters: `/access-profiles/audit-logs` beats `{profile_id}`.
        templates = sorted(
            {op.path for op in self.operations.values()},
            key=lambda t: (t.count("{"), -len(t)),
        )
        self.routes = [
            Route(
                template=t,
                pattern=_compile_template(t),
                operations={op.method: op for op in self.operations.values() if op.path == t},
            )
            for t in templates
        ]
        # A request's route in a dict lookup (a literal template) or among the templates with as many
        # segments (a parameter never spans a `/`), in the order above: no scan of every pattern.
        self._literal = {r.template: r for r in self.routes if "{" not in r.template}
        self._by_depth: dict[int, list[Route]] = {}
        for route in self.routes:
            if "{" in route.template:
                self._by_depth.setdefault(route.template.count("/"), []).append(route)
        # What ``project`` keeps of a value of a schema, worked out on first use: schema id -> (schema, shape).
        # The schema is kept with its shape, so its id is never another dict's while the entry lives.
        self._shapes: dict[int, tuple[dict[str, Any], _Shape]] = {}

    @classmethod
    def load(cls, path: Path) -> Spec:
        """Read a YAML or JSON document from disk."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read spec {path}: {exc.strerror}") from exc
        try:
            document = yaml.load(text, Loader=_loader())
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML/JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise SpecError(f"{path}: the document must be a mapping")
        return cls(document, str(path))

    @cached_property
    def openapi(self) -> Any:
        """The openapi-core object, built on first use (``validate`` checks the document itself)."""
        from openapi_core import Config, OpenAPI

        return OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))

    def validate(self, cache: Path | None = None, known: frozenset[str] = frozenset()) -> None:
        """Check the document with openapi-spec-validator, or raise ``SpecError``.

        Validation costs more than everything else a start does, so a validation already done is
        not done again. It is named by ``validation_record``: the document's digest and the
        validator's version. ``known`` holds records made elsewhere (the bundled spec ships its
        own, which the test suite keeps current); ``cache`` is a folder of records made here.
        """
        record = self.validation_record()
        if record in known:
            return
        marker = cache / hashlib.sha256(record.encode()).hexdigest() if cache is not None else None
        if marker is not None and marker.exists():
            return
        from openapi_spec_validator import validate
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

        try:
            validate(self.document)
        except OpenAPIValidationError as exc:
            raise SpecError(f"{self.source}: not a valid OpenAPI document: {exc.message}") from exc
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                pass  # an unwritable cache only costs time

    def validation_record(self) -> str:
        """``<sha256 of the document as served> openapi-spec-validator==<version>``."""
        from importlib.metadata import version

        digest = hashlib.sha256(self.json_bytes).hexdigest()
        return f"{digest} openapi-spec-validator=={version('openapi-spec-validator')}"

    @cached_property
    def page_size(self) -> PageSize:
        """How lists clamp the ``limit`` they are sent."""
        try:
            sizes = self.document["components"]["parameters"]["Limit"]["x-bifrost-page-size"]
            return PageSize(default=int(sizes["default"]), maximum=int(sizes["maximum"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"{self.source}: components.parameters.Limit declares no x-bifrost-page-size") from exc

    @cached_property
    def json_bytes(self) -> bytes:
        """The document as served at ``/openapi.json``."""
        return json.dumps(self.document, ensure_ascii=False).encode()

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of a request path and its raw path parameters, or None."""
        literal = self._literal.get(path)
        if literal is not None:
            return literal, {}
        for route in self._by_depth.get(path.count("/"), ()):
            found = route.pattern.fullmatch(path)
            if found:
                return route, found.groupdict()
        return None

    def sibling(self, operation: Operation, canonical_id: str) -> Operation:
        """Operation ``canonical_id`` in the same path family (canonical or alias) as ``operation``."""
        alias = operation.is_alias
        for op in self.operations.values():
            if op.canonical_id == canonical_id and op.is_alias == alias:
                return op
        return self.operations[canonical_id]

    def responses(self, operation: Operation) -> dict[str, Any]:
        """The ``responses`` object of an operation, by status (``"200"``, ``"4XX"``, ``"default"``)."""
        return self.document["paths"][operation.path][operation.method.lower()]["responses"]  # type: ignore[no-any-return]

    def resolve_any(self, node: Any) -> Any:
        """Follow ``$ref`` links of any component (responses, examples, headers...)."""
        while isinstance(node, dict) and "$ref" in node:
            node = _resolve_pointer(self.document, node["$ref"])
        return node

    def schema(self, name: str) -> dict[str, Any]:
        """A schema of ``components.schemas`` by name."""
        return self.document["components"]["schemas"][name]  # type: ignore[no-any-return]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow ``$ref`` links to components until a schema without one is reached."""
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith(_REF_PREFIX):
                raise SpecError(f"{self.source}: only local schema references are supported, got {ref}")
            schema = self.schema(ref[len(_REF_PREFIX) :])
        return schema

    def project(self, value: Any, schema: dict[str, Any]) -> Any:
        """Keep only the properties the schema declares, recursively: unknown fields are dropped.
        ``schema`` is one of this spec's own (``schema(name)``): its shape is worked out once and kept."""
        found = self._shapes.get(id(schema))
        if found is None:
            found = self._shapes[id(schema)] = (schema, _Shape(self, schema))
        return found[1].apply(value)

    def _members(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The schema and every schema it combines with allOf/oneOf/anyOf (resolved)."""
        schema = self.resolve(schema)
        found = [schema]
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in schema.get(key, ()):
                found.extend(self._members(sub))
        return found

    def _properties(self, schema: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
        merged: dict[str, list[dict[str, Any]]] = {}
        declared = False
        for member in self._members(schema):
            if "properties" in member:
                declared = True
                for name, sub in member["properties"].items():
                    merged.setdefault(name, []).append(sub)
        return merged if declared else None

    def _items(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        return [m["items"] for m in self._members(schema) if isinstance(m.get("items"), dict)]

    def limit(self, schema_name: str, field: str, keyword: str) -> Any:
        """A limit keyword (``maxLength``, ``maxItems``...) of one property, read from the spec."""
        for member in self._members(self.schema(schema_name)):
            prop = member.get("properties", {}).get(field)
            if prop is not None:
                for sub in self._members(prop):
                    if keyword in sub:
                        return sub[keyword]
        raise SpecError(f"{self.source}: {schema_name}.{field} declares no {keyword}")

    def keyword(self, schema_name: str, keyword: str) -> Any:
        """The first value of a keyword in a named schema or the schemas it combines."""
        for member in self._members(self.schema(schema_name)):
            if keyword in member:
                return member[keyword]
        raise SpecError(f"{self.source}: {schema_name} declares no {keyword}")


class _Shape:
    """The properties (each with its own shape) and the items' shape of one schema, merged over what
    it combines, for ``Spec.project``. A shape's parts are worked out when a value first reaches them,
    so a schema that refers to itself is no endless recursion. Two threads may both work one out;
    they find the same."""

    __slots__ = ("_spec", "_schema", "_properties", "_items", "_known")

    def __init__(self, spec: Spec, schema: dict[str, Any]) -> None:
        self._spec = spec
        self._schema = schema
        self._properties: dict[str, _Shape] | None = None
        self._items: _Shape | None = None
        self._known = False

    def _work_out(self) -> None:
        spec = self._spec
        merged = spec._properties(self._schema)
        if merged is not None:
            self._properties = {name: _Shape(spec, _all_of(subs)) for name, subs in merged.items()}
        items = spec._items(self._schema)
        if items:
            self._items = _Shape(spec, _all_of(items))
        self._known = True

    def apply(self, value: Any) -> Any:
        if not self._known:
            self._work_out()
        if isinstance(value, dict):
            properties = self._properties
            if properties is None:
                return value
            return {k: properties[k].apply(v) for k, v in value.items() if k in properties}
        if isinstance(value, list):
            items = self._items
            return value if items is None else [items.apply(v) for v in value]
        return value


def _all_of(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    return schemas[0] if len(schemas) == 1 else {"allOf": schemas}


def _loader() -> type[yaml.SafeLoader]:
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


def _compile_template(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{([^}/]+)\}", template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(regex)


def _lint(document: dict[str, Any], source: str) -> None:
    """Refuse shapes that the two tools read differently (see docs/toolchain notes)."""
    version = str(document.get("openapi", ""))
    if not version.startswith("3."):
        raise SpecError(f"{source}: expected an OpenAPI 3.x document, got openapi={version!r}")
    schemes = document.get("components", {}).get("securitySchemes", {})
    for name, scheme in schemes.items():
        # openapi-core compares the lower-cased header scheme to this value as written.
        if scheme.get("type") == "http" and scheme.get("scheme") != str(scheme.get("scheme", "")).lower():
            raise SpecError(f"{source}: securitySchemes.{name}.scheme must be lower-case")
    if version.startswith("3.1") and '"nullable"' in json.dumps(document):
        raise SpecError(f"{source}: `nullable` is ignored by 3.1 validators; write type: [X, 'null']")


def _schemes(document: dict[str, Any], requirements: list[dict[str, Any]]) -> tuple[str, ...]:
    """The HTTP schemes (lower case) named by a list of security requirements."""
    defined = document.get("components", {}).get("securitySchemes", {})
    found = (str(defined.get(name, {}).get("scheme", "")).lower() for item in requirements for name in item)
    return tuple(dict.fromkeys(scheme for scheme in found if scheme))


def _index_operations(document: dict[str, Any], source: str) -> dict[str, Operation]:
    operations: dict[str, Operation] = {}
    successors: dict[str, str] = {}
    default_schemes = _schemes(document, document.get("security", []))
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{source}: {method.upper()} {path}"
            op_id = op.get("operationId")
            permission = op.get("x-bifrost-permission")
            if not op_id or not permission:
                raise SpecError(f"{where}: every operation needs an operationId and x-bifrost-permission")
            if op_id in operations:
                raise SpecError(f"{where}: duplicate operationId {op_id}")
            body = op.get("requestBody")
            if body is not None and "$ref" in body:
                body = _resolve_pointer(document, body["$ref"])
            parameters = [
                _resolve_pointer(document, p["$ref"]) if "$ref" in p else p for p in item.get("parameters", [])
            ]
            parameters += [
                _resolve_pointer(document, p["$ref"]) if "$ref" in p else p for p in op.get("parameters", [])
            ]
            successors[op_id] = op.get("x-bifrost-successor", path)
            operations[op_id] = Operation(
                operation_id=op_id,
                method=method.upper(),
                path=path,
                permission=permission,
                canonical_id=op_id,
                body_media_types=tuple(body.get("content", {})) if body else (),
                body_required=bool(body and body.get("required")),
                deprecated=bool(op.get("deprecated")),
                integer_parameters=tuple(
                    (p["in"], p["name"]) for p in parameters if p.get("schema", {}).get("type") == "integer"
                ),
                schemes=_schemes(document, op["security"]) if "security" in op else default_schemes,
            )
    by_route = {(op.method, op.path): op_id for op_id, op in operations.items()}
    for op_id, successor in successors.items():
        op = operations[op_id]
        # A deprecated alias names its canonical twin as successor. An operation of the canonical
        # family that names a successor was replaced by another operation (addUserAccessProfileVirtualKey
        # by addUserVirtualKey), mounted here or not: it stays an operation of its own.
        if op.path.startswith(CANONICAL_PREFIX):
            continue
        canonical = by_route.get((op.method, successor))
        if canonical is None:
            raise SpecError(f"{source}: {op_id} names successor {successor}, which has no {op.method}")
        operations[op_id] = Operation(**{**op.__dict__, "canonical_id": canonical})
    return operations


def _resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node
