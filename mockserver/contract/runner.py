"""``mockserver contract``: check a Bifrost deployment (or a served mock) against the spec.

A run checks that it can reach the API, then runs Schemathesis once per path family (all phases,
every built-in check and ``contract.checks``), deletes the profiles it created, and reports.
Schemathesis runs in this process, so the hooks and checks registered here apply to it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from mockserver.contract import report
from mockserver.contract.config import schemathesis_settings, to_toml
from mockserver.contract.http import ENV_PREFIX, Answer, Http, RequestsHttp, Unreachable, guarded, target_from
from mockserver.contract.results import Results
from mockserver.contract.safety import Guard, Ownership
from mockserver.contract.session import AnchorError, Cleanup, Session, activate, collection_of, profile_collections
from mockserver.contract.signals import shielded, stop_on_signals
from mockserver.resources import bundled_spec, known_validations, spec_cache
from mockserver.spec.document import Spec, SpecError

ALL_PHASES = "examples,coverage,fuzzing,stateful"
# (name, whether its operations are the deprecated aliases)
FAMILIES = (("canonical", False), ("deprecated", True))
INTERRUPTED = 130  # Schemathesis's exit code after Ctrl-C
MOCK_HEALTH = "/__mock/health"
PERMISSIVE_MOCK_NOTE = (
    "this is mockserver with permissive auth, which accepts any credential by design, so ignored_auth is left "
    "out. To check authentication too, serve it strict (mockserver serve --api-keys fixtures/api-keys.json) "
    "and run with --token and a key from that file."
)


class ContractError(ValueError):
    """The options of a run cannot work together."""


@dataclass(frozen=True)
class ContractSettings:
    """Everything a contract run needs to know."""

    base_url: str
    authorization: str | None = None
    spec: Path = field(default_factory=bundled_spec)
    max_examples: int | None = None
    seed: int | None = None
    checks: str = "all"
    exclude_checks: str | None = None
    phases: str = ALL_PHASES
    # Canonical operationIds to test (their deprecated twins follow); empty means all.
    operations: tuple[str, ...] = ()
    report_dir: Path | None = None
    legacy_paths: bool = True
    read_only: bool = False
    timeout: float = 30.0


def settings_from(options: Mapping[str, Any], env: Mapping[str, str]) -> ContractSettings:
    """Settings from command-line ``options``; credentials and the URL may come from ``MOCKSERVER_CONTRACT_*``."""
    base_url, authorization = target_from(options, env, ContractError)
    values: dict[str, Any] = {
        "base_url": base_url,
        "authorization": authorization,
        "operations": tuple(op.strip() for op in (options.get("operations") or "").split(",") if op.strip()),
    }
    for name in ("spec", "max_examples", "seed", "checks", "exclude_checks", "phases", "report_dir", "legacy_paths"):
        if options.get(name) is not None:
            values[name] = options[name]
    values["read_only"] = bool(options.get("read_only"))
    return ContractSettings(**values)


def run(settings: ContractSettings, out: TextIO | None = None) -> int:
    """Run the contract checks; returns the exit code (0 passed, 1 contract failures, 2 could not run)."""
    out = out or sys.stdout
    started = time.monotonic()
    try:
        spec = Spec.load(settings.spec)
        # As `mockserver serve` does: a broken spec stops the run here.
        spec.validate(cache=spec_cache(), known=known_validations())
        passes = plan(spec, settings)
        ownership = Ownership(max_name_length=spec.limit("CreateAccessProfileRequest", "name", "maxLength"))
        http = RequestsHttp(settings.base_url, settings.authorization, settings.timeout)
        session = Session(spec, http, ownership, read_only=settings.read_only)
    except (SpecError, ContractError) as exc:
        print(f"mockserver contract: error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # a schema the checks rely on is missing
        print(f"mockserver contract: error: {settings.spec}: no schema {exc}", file=sys.stderr)
        return 2
    # Importing registers the checks and hooks with Schemathesis.
    from mockserver.contract import checks, hooks  # noqa: F401

    guard = Guard(ownership, settings.base_url, session.collections, read_only=settings.read_only)
    session.guard = guard
    problems: list[str] = []
    notes: list[str] = []
    exit_codes: list[int] = []
    cleanup = Cleanup((), ())
    say(out, f"mockserver contract: {settings.base_url} against {settings.spec}")
    with guarded(guard, session.refuse), activate(session), stop_on_signals(session.stop):
        try:
            problem = preflight(session, settings, out)
            if problem is not None:
                problems.append(problem)
            else:
                if is_permissive_mock(session.http):
                    notes.append(PERMISSIVE_MOCK_NOTE)
                    say(out, f"  {PERMISSIVE_MOCK_NOTE}")
                    settings = without_check(settings, "ignored_auth")
                exit_codes = _passes(session, settings, passes, out)
        except KeyboardInterrupt:
            session.results.interrupted = True
        finally:
            # A run stopped before its first change has nothing to clean up.
            if exit_codes or ownership.created():
                cleanup = shielded(session.cleanup, lambda exc: Cleanup((), (f"cleanup failed: {exc}",)))
            http.close()
    outcome = report.Outcome(
        target=settings.base_url,
        prefix=ownership.prefix,
        read_only=settings.read_only,
        seconds=time.monotonic() - started,
        exit_code=0,
        created=len(ownership.created()),
        deleted=len(cleanup.deleted),
        left_behind=cleanup.left,
        refusals=tuple(session.refusals),
        problems=tuple(problems),
        not_sent=tuple(session.not_sent.items()),
        notes=tuple(notes),
    )
    outcome = replace(outcome, exit_code=exit_code(session.results, outcome, exit_codes))
    out.write(report.text(session.results, outcome))
    if settings.report_dir is not None:
        for path in report.write(settings.report_dir, session.results, outcome):
            say(out, f"wrote {path}")
    out.flush()
    return outcome.exit_code


def plan(spec: Spec, settings: ContractSettings) -> list[tuple[str, list[str]]]:
    """(path family, operationIds) for each Schemathesis pass: canonical first, then the deprecated aliases."""
    known = {op.canonical_id for op in spec.operations.values()}
    unknown = sorted(set(settings.operations) - known)
    if unknown:
        raise ContractError(f"unknown operation {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    passes = []
    collections = profile_collections(spec)
    # An operation that does not take the run's kind of credentials (Basic, where upstream takes a
    # bearer token only) would answer nothing but 401.
    scheme = (settings.authorization or "").partition(" ")[0].lower()
    for family, deprecated in FAMILIES:
        if deprecated and not settings.legacy_paths:
            continue
        ids = sorted(
            op.operation_id
            for op in spec.operations.values()
            if op.is_alias == deprecated
            and (not settings.operations or op.canonical_id in settings.operations)
            and (not settings.read_only or op.method == "GET")
            # Changes outside the profile collections (to users' copies, their budget overrides
            # and keys) would touch real users: a run only reads there.
            and (op.method == "GET" or collection_of(op.path, collections) is not None)
            and (not scheme or scheme in op.schemes)
        )
        if ids:
            passes.append((family, ids))
    if not passes:
        raise ContractError("no operation left to test")
    return passes


def preflight(session: Session, settings: ContractSettings, out: TextIO) -> str | None:
    """Why the run cannot start (unreachable, refused credentials, no API there), or None."""
    collection = session.canonical_collection
    try:
        answer, problem = first_page(session.http, settings.base_url, collection)
    except Unreachable as exc:
        return f"cannot reach the API: {exc}"
    if problem is not None:
        return problem
    url = settings.base_url.rstrip("/") + collection
    say(out, f"  reached {url}: {answer.body.get('total_count')} profiles")
    if settings.read_only:
        say(out, "  read-only: only GET, HEAD, OPTIONS and TRACE requests will be sent")
        return None
    try:
        anchor = session.anchor(collection)
    except (AnchorError, Unreachable) as exc:
        return f"{exc}. Changes need AccessProfiles:Create, Update and Delete; use --read-only without them"
    say(
        out,
        f"  profiles created by this run are named {session.ownership.prefix}... and deleted at the end "
        f"(first: {anchor}); no other profile is changed",
    )
    return None


def first_page(http: Http, base_url: str, collection: str) -> tuple[Answer, str | None]:
    """GET the first profile of ``collection``: the answer, and why a run cannot start there (refused
    credentials, no API there) or None when it is a page of access profiles. Unreachable is raised.

    Shared by the commands that check a deployment before they start (contract, diff).
    """
    url = base_url.rstrip("/") + collection
    answer = http.request("GET", collection, query={"limit": 1})
    if answer.status == 401:
        problem: str | None = (
            f"GET {url} answered 401: credentials missing or refused. Pass --token or --basic "
            f"(or set {ENV_PREFIX}TOKEN or {ENV_PREFIX}BASIC)"
        )
    elif answer.status == 403:
        problem = f"GET {url} answered 403: the credentials lack the AccessProfiles:View permission"
    elif answer.status != 200 or not isinstance(answer.body, dict) or "access_profiles" not in answer.body:
        problem = f"GET {url} answered {answer.describe()}; expected a page of access profiles. Is --base-url right?"
    else:
        problem = None
    return answer, problem


def is_permissive_mock(http: Http) -> bool:
    """Whether the API under test is mockserver itself with permissive auth, as its health route says.

    A deployment has no ``/__mock/health``, and a proxy or gateway in front of the mock that does
    not pass it on hides it, so only the mock can make a run leave ``ignored_auth`` out.
    """
    try:
        answer = http.request("GET", MOCK_HEALTH)
    except Unreachable:
        return False
    body = answer.body
    return (
        answer.status == 200
        and isinstance(body, dict)
        and body.get("service") == "mockserver"
        and body.get("auth") == "permissive"
    )


def without_check(settings: ContractSettings, check: str) -> ContractSettings:
    """``settings`` with ``check`` added to the excluded checks."""
    excluded = [name.strip() for name in (settings.exclude_checks or "").split(",") if name.strip()]
    if check not in excluded:
        excluded.append(check)
    return replace(settings, exclude_checks=",".join(excluded))


def exit_code(results: Results, outcome: report.Outcome, schemathesis_codes: list[int]) -> int:
    """1 for contract failures; 2 when the run could not be completed or left something behind; else 0."""
    if results.failures:
        return 1
    incomplete = (
        outcome.problems
        or results.interrupted
        or results.errors
        or outcome.refusals
        or outcome.left_behind
        or any(code not in (0, 1) for code in schemathesis_codes)
    )
    if incomplete:
        return 2
    # Schemathesis fails a run for warnings we made fatal, e.g. every answer being 401.
    return 1 if 1 in schemathesis_codes else 0


def _passes(
    session: Session, settings: ContractSettings, passes: list[tuple[str, list[str]]], out: TextIO
) -> list[int]:
    codes = []
    with tempfile.TemporaryDirectory(prefix="mockserver-contract-") as directory:
        config = Path(directory, "schemathesis.toml")
        config.write_text(to_toml(schemathesis_settings(session.spec, read_only=settings.read_only)), encoding="utf-8")
        for number, (family, operation_ids) in enumerate(passes, 1):
            say(out, f"\n== pass {number}/{len(passes)}: {family} paths, {len(operation_ids)} operations ==")
            session.results.family = family
            code = _schemathesis(schemathesis_arguments(settings, config, operation_ids))
            codes.append(code)
            if code == INTERRUPTED or session.results.interrupted:
                session.results.interrupted = True
                break
    return codes


def schemathesis_arguments(settings: ContractSettings, config: Path, operation_ids: list[str]) -> list[str]:
    """The ``schemathesis`` command line of one pass."""
    arguments = ["--config-file", str(config), "run", str(settings.spec), "--url", settings.base_url]
    arguments += ["--checks", settings.checks, "--phases", settings.phases, "--workers", "1"]
    for operation_id in operation_ids:
        arguments += ["--include-operation-id", operation_id]
    if settings.authorization:
        arguments += ["--header", f"Authorization: {settings.authorization}"]
    if settings.exclude_checks:
        arguments += ["--exclude-checks", settings.exclude_checks]
    if settings.max_examples is not None:
        arguments += ["--max-examples", str(settings.max_examples)]
    if settings.seed is not None:
        arguments += ["--seed", str(settings.seed)]
    return arguments


def _schemathesis(arguments: list[str]) -> int:
    """Run ``schemathesis`` in this process; its exit code."""
    import click
    from schemathesis.cli import schemathesis as command

    try:
        result = command.main(args=arguments, prog_name="schemathesis", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except click.exceptions.Abort:
        return INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return 2
    return result if isinstance(result, int) else 0


def say(out: TextIO, line: str) -> None:
    """Write a line of progress to ``out`` at once (the diff command's too)."""
    out.write(line + "\n")
    out.flush()
