"""The spec itself: valid, complete for what the mock sends, and the two path families in step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from mockserver.resources import bundled_spec, known_validations
from mockserver.spec.document import HTTP_METHODS, Spec, SpecError

SPEC = Spec.load(bundled_spec())
DOC = SPEC.document
OPERATIONS = sorted(SPEC.operations.values(), key=lambda op: op.operation_id)
CANONICAL_OPS = [op for op in OPERATIONS if op.canonical_id == op.operation_id]
LEGACY_OPS = [op for op in OPERATIONS if op.canonical_id != op.operation_id]
BY_ID = pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)


def raw(op_id: str) -> dict[str, Any]:
    op = SPEC.operations[op_id]
    return DOC["paths"][op.path][op.method.lower()]  # type: ignore[no-any-return]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def test_spec_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"] == "3.1.0"
    validate(DOC)  # raises on any error


def test_the_24_operations_and_their_22_deprecated_aliases() -> None:
    canonical = {op.operation_id: (op.method, op.path) for op in CANONICAL_OPS}
    assert len(canonical) == 24
    lifecycle = {
        "listAccessProfiles": ("GET", "/api/governance/access-profiles"),
        "createAccessProfile": ("POST", "/api/governance/access-profiles"),
        "getAccessProfile": ("GET", "/api/governance/access-profiles/{profile_id}"),
        "updateAccessProfile": ("PUT", "/api/governance/access-profiles/{profile_id}"),
        "deleteAccessProfile": ("DELETE", "/api/governance/access-profiles/{profile_id}"),
        "activateAccessProfile": ("PUT", "/api/governance/access-profiles/{profile_id}/activate"),
        "deactivateAccessProfile": ("PUT", "/api/governance/access-profiles/{profile_id}/deactivate"),
        "cloneAccessProfile": ("POST", "/api/governance/access-profiles/{profile_id}/clone"),
    }
    assert {k: canonical[k] for k in lifecycle} == lifecycle
    # The user's keys (contract section 1.1): upstream mounts a deprecated twin for the list only.
    keys = {
        "listUserVirtualKeys": ("GET", "/api/governance/users/{user_id}/virtual-keys"),
        "addUserVirtualKey": ("POST", "/api/governance/users/{user_id}/virtual-keys"),
        "getMyVirtualKeyCreationPolicy": ("GET", "/api/governance/users/me/vk-creation-policy"),
    }
    assert {k: canonical[k] for k in keys} == keys
    without_alias = {"addUserVirtualKey", "getMyVirtualKeyCreationPolicy"}
    legacy = {op.operation_id: op.canonical_id for op in LEGACY_OPS}
    assert len(legacy) == 22
    assert set(legacy.values()) == set(canonical) - without_alias
    assert SPEC.operations["listUserVirtualKeysLegacy"].path == "/api/users/{user_id}/virtual-keys"
    irregular = {  # legacy ids that are not the canonical id + "Legacy" (contract section 1)
        "attachAccessProfileRolesLegacy": "attachRolesToAccessProfile",
        "detachAccessProfileRoleLegacy": "detachRoleFromAccessProfile",
        "getAccessProfileAuditLogsLegacy": "listAccessProfileAuditLogsById",
        "getAllAccessProfileAuditLogsLegacy": "listAccessProfileAuditLogs",
        "getUserAccessProfilesLegacy": "listUserAccessProfiles",
    }
    regular = {f"{op_id}Legacy": op_id for op_id in canonical if op_id not in {*irregular.values(), *without_alias}}
    assert legacy == regular | irregular


def test_the_deprecated_key_operation_names_its_successor_and_stays_an_operation_of_its_own() -> None:
    """#20 names addUserVirtualKey as successor, but it is no alias: its path and parameters differ."""
    old = SPEC.operations["addUserAccessProfileVirtualKey"]
    assert raw(old.operation_id)["x-bifrost-successor"] == SPEC.operations["addUserVirtualKey"].path
    assert old.canonical_id == old.operation_id and not old.is_alias
    assert SPEC.operations["addUserAccessProfileVirtualKeyLegacy"].canonical_id == old.operation_id


@pytest.mark.parametrize("op", LEGACY_OPS, ids=lambda op: op.operation_id)
def test_legacy_alias_mirrors_its_canonical_operation(op: Any) -> None:
    legacy, canonical = raw(op.operation_id), raw(op.canonical_id)
    assert op.path == SPEC.operations[op.canonical_id].path.replace("/api/governance/", "/api/")
    assert legacy["deprecated"] is True
    assert legacy["x-bifrost-successor"] == SPEC.operations[op.canonical_id].path
    assert legacy["x-bifrost-removal"] == "following-major-release"
    # Only #20 is deprecated in the canonical family too (its successor is another API).
    assert bool(canonical.get("deprecated")) == (op.canonical_id == "addUserAccessProfileVirtualKey")
    for key in ("parameters", "requestBody", "x-bifrost-permission"):
        assert legacy.get(key) == canonical.get(key), key

    # Answers with links have a deprecated-family twin whose links stay in that family.
    def family(ref: dict[str, str]) -> dict[str, str]:
        return {"$ref": ref["$ref"].removesuffix("Legacy")}

    assert {k: family(v) for k, v in legacy["responses"].items()} == canonical["responses"]
    for status, ref in legacy["responses"].items():
        if ref["$ref"].endswith("Legacy"):
            links = resolve(ref)["links"]
            assert all(SPEC.operations[link["operationId"]].is_alias for link in links.values()), status
    path_params = DOC["paths"][op.path].get("parameters")
    assert path_params == DOC["paths"][SPEC.operations[op.canonical_id].path].get("parameters")


@BY_ID
def test_permission_follows_the_method(op: Any) -> None:
    verb = {"GET": "View", "POST": "Create", "PUT": "Update", "DELETE": "Delete"}[op.method]
    assert op.permission == f"AccessProfiles:{verb}"


# Upstream accepts only a bearer token on these two (governanceextensions.yaml); every other
# operation takes the document's Bearer-or-Basic.
BEARER_ONLY = {"addUserVirtualKey", "getMyVirtualKeyCreationPolicy"}


def test_every_operation_accepts_bearer_or_basic_except_the_two_upstream_limits_to_bearer() -> None:
    assert DOC["security"] == [{"ManagementBearerAuth": []}, {"BasicAuth": []}]
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["ManagementBearerAuth"] == {**schemes["ManagementBearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["BasicAuth"] == {**schemes["BasicAuth"], "type": "http", "scheme": "basic"}
    assert {op.operation_id for op in OPERATIONS if "security" in raw(op.operation_id)} == BEARER_ONLY
    for op in OPERATIONS:
        if op.operation_id in BEARER_ONLY:
            assert raw(op.operation_id)["security"] == [{"ManagementBearerAuth": []}]
        expected = ("bearer",) if op.operation_id in BEARER_ONLY else ("bearer", "basic")
        assert op.schemes == expected, op.operation_id


@BY_ID
def test_every_status_the_mock_can_send_is_declared(op: Any) -> None:
    declared = set(raw(op.operation_id)["responses"])
    # credentials, permissions, reported defects, and a shared state store that cannot be reached
    always = {"401", "403", "500", "503"}
    if op.body_media_types or "{" in op.path or raw(op.operation_id).get("parameters"):
        always.add("400")  # a parameter or a body the spec refuses
    body = {"413", "415"} if op.body_media_types else set()
    # What each operation can answer besides those: its success, 404 for an id that matches
    # nothing (not on lists, which answer empty), 409 for a name clash or copies still held.
    specific = {
        "listAccessProfiles": {"200"},
        "createAccessProfile": {"201", "409"},
        "getAccessProfile": {"200", "404"},
        "updateAccessProfile": {"200", "404", "409"},
        "deleteAccessProfile": {"200", "404", "409"},
        "activateAccessProfile": {"200", "404"},
        "deactivateAccessProfile": {"200", "404"},
        "cloneAccessProfile": {"201", "404", "409"},
        "propagateAccessProfile": {"200", "404"},
        "attachRolesToAccessProfile": {"200", "404"},
        "detachRoleFromAccessProfile": {"200", "404"},
        "listAccessProfileVersions": {"200", "404"},
        "getAccessProfileVersion": {"200", "404"},
        "listAccessProfileAuditLogsById": {"200", "404"},
        "listAccessProfileAuditLogs": {"200"},
        "listUserAccessProfiles": {"200"},
        "detachUserAccessProfile": {"200", "404"},
        "updateUserAccessProfileBudgetOverride": {"200", "404"},
        "deleteUserAccessProfileBudgetOverride": {"200", "404"},
        "addUserAccessProfileVirtualKey": {"200", "404", "409"},
        "deleteUserAccessProfileVirtualKey": {"200", "404"},
        "listUserVirtualKeys": {"200"},
        "addUserVirtualKey": {"200", "404", "409"},
        "getMyVirtualKeyCreationPolicy": {"200"},
    }
    assert declared == always | body | specific[op.canonical_id]


@BY_ID
def test_every_error_response_uses_the_bifrost_error_envelope(op: Any) -> None:
    for status, response in raw(op.operation_id)["responses"].items():
        if status.startswith(("4", "5")):
            schema = resolve(response)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/BifrostError"}, status
    unauthorized = resolve(raw(op.operation_id)["responses"]["401"])
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True


@pytest.mark.parametrize("suffix", ["", "Legacy"], ids=["canonical", "legacy"])
def test_created_responses_link_to_the_follow_up_operations_of_their_family(suffix: str) -> None:
    created = DOC["components"]["responses"][f"AccessProfileCreated{suffix}"]
    links = {name: link["operationId"] for name, link in created["links"].items()}
    assert set(links.values()) >= {
        f"{op_id}{suffix}"
        for op_id in (
            "getAccessProfile",
            "updateAccessProfile",
            "deleteAccessProfile",
            "cloneAccessProfile",
            "activateAccessProfile",
        )
    }
    for link in created["links"].values():
        assert link["parameters"] == {"profile_id": "$response.body#/access_profile/id"}
    assert created["headers"]["Location"]["required"] is True
    for op_id in ("createAccessProfile", "cloneAccessProfile"):
        response = raw(f"{op_id}{suffix}")["responses"]["201"]
        assert response == {"$ref": f"#/components/responses/AccessProfileCreated{suffix}"}


def _examples() -> list[tuple[str, dict[str, Any], Any]]:
    """(where, schema, value) for every example in request bodies and responses."""
    found = []
    for group in ("requestBodies", "responses"):
        for name, item in DOC["components"][group].items():
            for media in item.get("content", {}).values():
                for ex_name, example in media.get("examples", {}).items():
                    found.append((f"{group}.{name}.{ex_name}", media["schema"], example["value"]))
    return found


@pytest.mark.parametrize(("where", "schema", "value"), _examples(), ids=[e[0] for e in _examples()])
def test_examples_are_valid_against_their_schema(where: str, schema: dict[str, Any], value: Any) -> None:
    validator = OAS31Validator(
        {**schema, "components": DOC["components"]}, format_checker=OAS31Validator.FORMAT_CHECKER
    )
    errors = [e.message for e in validator.iter_errors(value)]
    assert errors == [], where


@BY_ID
def test_every_operation_has_an_example(op: Any) -> None:
    operation = raw(op.operation_id)
    if "requestBody" in operation:
        assert resolve(operation["requestBody"])["content"]["application/json"]["examples"]
    success = next(s for s in operation["responses"] if s.startswith("2"))
    assert resolve(operation["responses"][success])["content"]["application/json"]["examples"]


def test_nullable_fields_use_the_3_1_form() -> None:
    assert '"nullable"' not in str(DOC).replace("'", '"')
    schemas = DOC["components"]["schemas"]
    update = schemas["UpdateAccessProfileRequest"]["properties"]
    assert update["description"]["type"] == ["string", "null"]
    assert update["calendar_aligned"]["type"] == ["boolean", "null"]
    assert {"type": "null"} in update["rate_limit"]["oneOf"]
    assert schemas["AccessProfile"]["properties"]["description"]["type"] == ["string", "null"]


def test_limits_and_enums_match_the_contract() -> None:
    schemas = DOC["components"]["schemas"]
    assert schemas["BudgetResetDuration"]["enum"] == ["1h", "1d", "1w", "1M", "1Q", "1Y"]
    assert schemas["RateLimitResetDuration"]["enum"] == ["1h", "1d", "1w", "1M", "1Y"]
    assert schemas["BudgetResetConfig"]["additionalProperties"] is False
    month = schemas["BudgetResetConfig"]["properties"]["quarter_start_month"]
    assert (month["minimum"], month["maximum"]) == (1, 12)
    update = schemas["UpdateAccessProfileRequest"]["properties"]
    assert update["provider_configs"]["maxItems"] == 100
    assert update["budgets"]["maxItems"] == 100
    assert update["tags"]["maxItems"] == 50
    assert SPEC.limit("UpdateProviderConfig", "budgets", "maxItems") == 100
    assert update["name"]["maxLength"] == 255
    create = schemas["CreateAccessProfileRequest"]["properties"]
    assert create["name"]["maxLength"] == 255
    assert all("maxItems" not in create[k] for k in ("provider_configs", "budgets", "tags"))
    assert "is_active" not in create and "version" not in create
    assert schemas["CreateAccessProfileRequest"]["required"] == ["name"]
    assert "required" not in schemas["UpdateAccessProfileRequest"]


def test_no_schema_sets_a_default() -> None:
    # openapi-core fills defaults into request bodies, which would break partial updates.
    assert "'default'" not in str(DOC["components"]["schemas"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(openapi="2.0"), "expected an OpenAPI 3.x document"),
        (lambda d: d["components"]["securitySchemes"]["ManagementBearerAuth"].update(scheme="Bearer"), "lower-case"),
        (lambda d: d["components"]["schemas"]["RateLimit"].update(nullable=True), "nullable"),
        (lambda d: d["paths"]["/api/access-profiles"]["get"].pop("x-bifrost-permission"), "x-bifrost-permission"),
        (lambda d: d["paths"]["/api/access-profiles"]["get"].update(operationId="getAccessProfile"), "duplicate"),
        (
            lambda d: d["paths"]["/api/access-profiles"]["get"].update({"x-bifrost-successor": "/nope"}),
            "names successor /nope",
        ),
    ],
    ids=["swagger-2", "capital-bearer", "nullable-in-3.1", "no-permission", "duplicate-id", "bad-successor"],
)
def test_spec_shapes_the_mock_cannot_serve_are_refused(change: Any, message: str) -> None:
    import copy

    document = copy.deepcopy(DOC)
    change(document)
    with pytest.raises(SpecError, match=message):
        Spec(document)


def test_routes_put_literal_paths_first() -> None:
    counts = [r.template.count("{") for r in SPEC.routes]
    assert counts == sorted(counts)  # literal templates first, then by number of parameters
    for path, template in [
        ("/api/governance/access-profiles/audit-logs", "/api/governance/access-profiles/audit-logs"),
        ("/api/access-profiles/audit-logs", "/api/access-profiles/audit-logs"),
        ("/api/governance/access-profiles/7", "/api/governance/access-profiles/{profile_id}"),
        (
            "/api/governance/users/u-1/access-profiles/virtual-keys/vk-1",
            "/api/governance/users/{user_id}/access-profiles/virtual-keys/{vk_id}",
        ),
        (
            "/api/users/u-1/access-profiles/3/virtual-keys",
            "/api/users/{user_id}/access-profiles/{profile_id}/virtual-keys",
        ),
        ("/api/users/u-1/access-profiles/3", "/api/users/{user_id}/access-profiles/{profile_id}"),
        # The literal `me` route comes before the user's routes; `me` is an ordinary user id elsewhere.
        ("/api/governance/users/me/vk-creation-policy", "/api/governance/users/me/vk-creation-policy"),
        ("/api/governance/users/me/virtual-keys", "/api/governance/users/{user_id}/virtual-keys"),
        ("/api/users/u-1/virtual-keys", "/api/users/{user_id}/virtual-keys"),
    ]:
        found = SPEC.match(path)
        assert found is not None and found[0].template == template, path
    found = SPEC.match("/api/governance/access-profiles/17/clone")
    assert found is not None
    assert found[0].template == "/api/governance/access-profiles/{profile_id}/clone"
    assert found[1] == {"profile_id": "17"}
    assert SPEC.match("/api/governance/access-profiles/17/") is None
    assert set(HTTP_METHODS) >= {m.lower() for r in SPEC.routes for m in r.operations}


def test_the_name_pattern_refuses_exactly_the_white_space_that_names_are_trimmed_of() -> None:
    import re

    from mockserver.domain.profiles import NAME_SPACE

    patterns = {
        DOC["components"]["schemas"][name]["properties"]["name"]["pattern"]
        for name in ("CreateAccessProfileRequest", "UpdateAccessProfileRequest", "CloneProfileRequest")
    }
    (pattern,) = patterns
    blank = {chr(c) for c in range(0x3100) if not re.search(pattern, chr(c))}
    assert blank == set(NAME_SPACE)


# -- validation once per document and validator version ----------------------------------------------


def test_the_bundled_spec_ships_a_record_of_its_validation() -> None:
    """A first start skips the slowest step, validating the document, because the bundled spec
    ships its record. The record must name the document as it is now (rerun `make spec-record`
    after changing openapi/), and the document must pass the validator installed here."""
    spec = Spec.load(bundled_spec())
    spec.validate()  # no cache, no known records: a real validation
    digest, validator = spec.validation_record().split(" ")
    shipped = known_validations()
    assert any(record.startswith(f"{digest} ") for record in shipped), (
        f"openapi/validated.txt does not name the bundled spec as it is now; run `make spec-record` ({digest})"
    )
    assert all(record.split(" ")[1].startswith("openapi-spec-validator==") for record in shipped)
    assert validator.startswith("openapi-spec-validator==")


def invalid_document() -> dict[str, Any]:
    import copy

    document = copy.deepcopy(DOC)
    document["info"]["version"] = 3  # must be a string; only the validator looks at it
    return document


def test_a_known_record_or_a_cached_one_skips_validation_and_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = Spec(invalid_document())
    with pytest.raises(SpecError, match="not a valid OpenAPI document"):
        spec.validate(cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # a failed validation is not recorded
    spec.validate(known=frozenset({spec.validation_record()}))  # the record stands for a validation done
    changed = invalid_document()
    changed["info"]["title"] = "changed"
    with pytest.raises(SpecError):  # a record names one document: any change validates again
        Spec(changed).validate(known=frozenset({spec.validation_record()}))

    valid = Spec.load(bundled_spec())
    valid.validate(cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1

    def must_not_run(document: Any) -> None:
        raise AssertionError("validated again")

    monkeypatch.setattr("openapi_spec_validator.validate", must_not_run)
    valid.validate(cache=tmp_path)  # the cached record is enough
    with pytest.raises(AssertionError, match="validated again"):
        valid.validate()


def test_the_spec_file_has_no_yaml_alias_to_a_mapping_or_a_sequence() -> None:
    """Java tools read YAML through SnakeYAML, which refuses more than 50 such aliases by default."""
    text = bundled_spec().read_text()
    anchored: dict[str, type] = {}
    aliased: list[str] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)) and event.anchor:
            anchored[event.anchor] = type(event)
        elif isinstance(event, yaml.AliasEvent) and event.anchor in anchored:
            aliased.append(f"*{event.anchor} (line {event.start_mark.line + 1})")
    assert aliased == [], "use a $ref to a component instead of: " + ", ".join(aliased)


# -- a spec other people's tools read (style principle 14) ---------------------------------------------


def _schemas(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """(JSON pointer, node) for every mapping in the document; the schema checks below pick theirs."""
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _schemas(value, f"{path}/{str(key).replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _schemas(value, f"{path}/{index}")
    return found


def _is_array(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "array" or (isinstance(kind, list) and "array" in kind)


def test_every_array_says_what_its_items_are() -> None:
    """Specmatic refuses an array schema without `items` ("No items schema defined"), Spectral calls it
    an error, and code generators fall back to `unknown[]`; an allOf branch that only adds a limit must
    still say it."""
    bare = [path for path, node in _schemas(DOC) if _is_array(node) and "items" not in node]
    assert bare == []


PATTERNS = sorted({node["pattern"] for _, node in _schemas(DOC) if isinstance(node.get("pattern"), str)})
PATTERN_SCHEMAS = [
    (path, node)
    for path, node in _schemas(DOC)
    if isinstance(node.get("pattern"), str) and node.get("type") == "string"
]
# Durations, names, blanks, and newlines where Python's `$` and ECMA-262's `$` part ways.
SAMPLES = ["", "\n", "1h", "1h\n", "\n1h", "1h\n\n", "1h\r", "30d", "30d\n", "0", "-0\n", "1.5h30m", "12µs", "abc",
           " ", "\t", "\u3000", "\u2028", "\u0085", "a b", " Platform ", "名前", "٣h", "x\n", "\n\n"]  # fmt: skip
NODE_CHECK = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const Ajv2020 = require(input.root + "/node_modules/ajv/dist/2020").default;
const ajv = new Ajv2020({strict: false, validateFormats: false});
const out = {errors: {}, bare: {}, schemas: []};
for (const p of input.patterns) {
  try { const re = new RegExp(p, "u"); out.bare[p] = input.samples.map((s) => re.test(s)); }
  catch (e) { out.errors[p] = String(e); }
}
out.schemas = input.schemas.map((schema) => { const v = ajv.compile(schema); return input.samples.map((s) => v(s)); });
process.stdout.write(JSON.stringify(out));
"""


def _ecma(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    """Every pattern compiled with `new RegExp(p, "u")` and every schema run by Ajv (JSON Schema 2020-12,
    ECMA-262 regexes) in Node, on SAMPLES."""
    import json
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    node = shutil.which("node")
    assert node and (root / "node_modules/ajv").is_dir(), "needs node and the Node tools: run `make`"
    sent = json.dumps({"root": str(root), "patterns": PATTERNS, "samples": SAMPLES, "schemas": schemas})
    done = subprocess.run([node, "-e", NODE_CHECK], input=sent, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_every_pattern_is_ecma_262_and_python_and_their_schemas_accept_the_same_strings() -> None:
    """JSON Schema's regex dialect is ECMA-262 (with the `u` flag, as Ajv and Java's tools compile it);
    openapi-core reads the same patterns with Python's `re` and jsonschema-rs (spec.fastcheck) with
    ECMA's meaning. A bare pattern may differ on one point only, `$` before a final newline (Python
    matches there): the schema around it then refuses newlines itself, so every schema that holds a
    pattern accepts exactly the same samples in both dialects."""
    import re

    ecma = _ecma([node for _, node in PATTERN_SCHEMAS])
    assert ecma["errors"] == {}
    # Nor lookarounds or inline flags: tools that generate strings from a pattern (Specmatic) cannot.
    assert [p for p in PATTERNS if "(?" in p] == []
    for pattern in PATTERNS:
        python = [re.search(pattern, sample) is not None for sample in SAMPLES]
        differ = [s for s, py, js in zip(SAMPLES, python, ecma["bare"][pattern], strict=True) if py != js]
        assert all(s.endswith("\n") for s in differ) and (not differ or pattern.endswith("$")), (pattern, differ)
    for (path, schema), js in zip(PATTERN_SCHEMAS, ecma["schemas"], strict=True):
        python = [OAS31Validator(schema).is_valid(sample) for sample in SAMPLES]
        assert python == js, path
    assert any(s == "1h\n" for s in SAMPLES) and len(PATTERN_SCHEMAS) >= 4  # the rotation interval and 3 names


def _named(node: dict[str, Any]) -> set[str]:
    return set(node.get("examples", {}))


@BY_ID
def test_examples_pair_up_by_name_across_request_answer_and_headers(op: Any) -> None:
    """Example-driven tools (Specmatic) make a test of a request example and the answer example of the
    same name, and refuse the file when a required header of that answer has no example of that name.
    So: every request example has a success answer named like it, no error answer shares its name or
    the name of a parameter's example (a tool would expect that error for the same request), and
    headers name their examples as the body."""
    operation = raw(op.operation_id)
    requested: set[str] = set()
    if "requestBody" in operation:
        requested = _named(resolve(operation["requestBody"])["content"]["application/json"])
    parameters = [resolve(p) for p in DOC["paths"][op.path].get("parameters", []) + operation.get("parameters", [])]
    named_parameters = set().union(*(_named(p) for p in parameters))
    for status, ref in operation["responses"].items():
        response = resolve(ref)
        body = _named(response.get("content", {}).get("application/json", {}))
        if status.startswith("2"):
            assert requested <= body, f"{status}: request examples without an answer: {sorted(requested - body)}"
        else:
            assert not (requested | named_parameters) & body, f"{status} shares example names with the request"
        for name, header in response.get("headers", {}).items():
            header = resolve(header)
            assert "example" not in header, f"{status} {name}: name its examples like the body's"
            assert _named(header) == body, f"{status} {name}"


def test_project_keeps_what_the_schema_declares_through_refs_all_of_and_lists_every_time() -> None:
    """``project`` works a schema's shape out once and keeps it: a second value, with fields the first
    did not have, is cut by the same rules (declared ones kept at every depth, the rest dropped)."""
    spec = Spec(
        {
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {},
            "components": {
                "schemas": {
                    "Limit": {"type": "object", "properties": {"max": {"type": "integer"}}},
                    "Named": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "Body": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Named"},
                            {
                                "type": "object",
                                "properties": {
                                    "limits": {"type": "array", "items": {"$ref": "#/components/schemas/Limit"}},
                                    "free": {"type": "object"},
                                },
                            },
                        ]
                    },
                }
            },
        }
    )
    body = spec.schema("Body")
    first = {"name": "a", "extra": 1, "limits": [{"max": 5, "unit": "x"}], "free": {"any": {"deep": 1}}}
    assert spec.project(first, body) == {"name": "a", "limits": [{"max": 5}], "free": {"any": {"deep": 1}}}
    second = {"limits": [{"max": 1}, {"max": 2, "min": 0}], "other": [1], "name": "b"}
    assert spec.project(second, body) == {"limits": [{"max": 1}, {"max": 2}], "name": "b"}
    assert spec.project("not an object", body) == "not an object"
