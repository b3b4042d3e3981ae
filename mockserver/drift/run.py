"""``mockserver diff``: walk the tour (and generated sequences) on a deployment and on a fresh mock, and compare.

The mock runs in this process, built by ``create_app`` from the same spec. It mirrors the
deployment's authentication: strict, knowing only the run's credentials, unless the deployment
is itself the mock with permissive auth. The deployment is reached as ``mockserver contract``
reaches it, with the same guard and the same cleanup, also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from mockserver.contract.http import Http, RequestsHttp, Unreachable, WsgiHttp, guarded, target_from
from mockserver.contract.runner import first_page, is_permissive_mock, say
from mockserver.contract.safety import Guard, Ownership
from mockserver.contract.session import Cleanup, profile_collections, remove_owned
from mockserver.contract.signals import shielded, stop_on_signals
from mockserver.drift import report
from mockserver.drift.compare import Normaliser
from mockserver.drift.tour import RUN, Step, tour
from mockserver.drift.walk import CANONICAL_LETTER, COMPARED, NOT_SENT, SKIPPED, Side, StepResult, Walk
from mockserver.resources import bundled_spec
from mockserver.server.app import create_app, spec_for
from mockserver.settings import Settings
from mockserver.spec.document import Spec, SpecError

NAME_PREFIX = "mockserver-diff-"
PERMISSIVE_MOCK_NOTE = (
    "the deployment is mockserver with permissive auth, so the mock it is compared with accepts any "
    "credential too. To compare strict authentication, serve it with --api-keys."
)
Connect = Callable[[str | None], Http]


class DiffError(ValueError):
    """The options of a run cannot work together."""


@dataclass(frozen=True)
class DiffSettings:
    """Everything a drift run needs to know."""

    base_url: str
    authorization: str | None = None
    spec: Path = field(default_factory=bundled_spec)
    report_dir: Path | None = None
    read_only: bool = False
    legacy_paths: bool = True
    stateful: int = 0  # generated sequences replayed after the tour
    seed: int | None = None
    timeout: float = 30.0


def settings_from(options: Mapping[str, Any], env: Mapping[str, str]) -> DiffSettings:
    """Settings from command-line ``options``; the URL and credentials may come from ``MOCKSERVER_CONTRACT_*``."""
    base_url, authorization = target_from(options, env, DiffError)
    stateful = options.get("stateful") or 0
    if stateful < 0:
        raise DiffError("--stateful takes a number of sequences, 0 or more")
    values: dict[str, Any] = {"base_url": base_url, "authorization": authorization}
    for name in ("spec", "report_dir", "legacy_paths", "seed"):
        if options.get(name) is not None:
            values[name] = options[name]
    return DiffSettings(**values, stateful=stateful, read_only=bool(options.get("read_only")))


@dataclass
class _Run:
    """What the run has found and decided so far."""

    results: list[StepResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    stopping: bool = False

    def stop(self) -> None:
        self.stopping = True


def run(settings: DiffSettings, out: TextIO | None = None, connect: Connect | None = None) -> int:
    """Compare the deployment with the mock; returns the exit code (0 no difference, 1 differences, 2 not completed).

    ``connect`` reaches the deployment with a given Authorization (default: over HTTP at ``base_url``).
    """
    out = out or sys.stdout
    started = time.monotonic()
    try:
        spec = spec_for(settings.spec)  # the mock's own, cached
        collections = profile_collections(spec)
        ownership = Ownership(
            max_name_length=spec.limit("CreateAccessProfileRequest", "name", "maxLength"), namespace=NAME_PREFIX
        )
    except SpecError as exc:
        print(f"mockserver diff: error: {exc}", file=sys.stderr)
        return 2
    state = _Run()
    guard = Guard(ownership, settings.base_url, collections, read_only=settings.read_only)

    def over_http(authorization: str | None) -> Http:
        return RequestsHttp(settings.base_url, authorization, settings.timeout)

    deployment = Side(
        "deployment", connect or over_http, settings.authorization, Normaliser(ownership.prefix), guard, ownership
    )
    cleanup = Cleanup((), ())
    interrupted = False
    say(out, f"mockserver diff: {settings.base_url} against a fresh in-process mock of {settings.spec}")
    with guarded(guard, state.refused.append), stop_on_signals(state.stop):
        try:
            _, problem = first_page(deployment.http(RUN), settings.base_url, collections[0])
            if problem is not None:
                state.problems.append(problem)
            else:
                _compare(settings, spec, collections, deployment, ownership, state, out)
        except Unreachable as exc:
            state.problems.append(f"cannot reach the API: {exc}")
        except SpecError as exc:  # the mock could not be built from the spec
            state.problems.append(f"cannot build the mock: {exc}")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if ownership.created():
                cleanup = shielded(
                    lambda: remove_owned(deployment.http(RUN), ownership, collections[0], spec.page_size.maximum),
                    lambda exc: Cleanup((), (f"cleanup failed: {exc}",)),
                )
            deployment.close()
    outcome = report.Outcome(
        target=settings.base_url,
        spec=str(settings.spec),
        prefix=ownership.prefix,
        read_only=settings.read_only,
        seconds=time.monotonic() - started,
        sections=tuple(state.sections),
        created=len(ownership.created()),
        deleted=len(cleanup.deleted),
        left_behind=cleanup.left,
        problems=tuple(state.problems + [f"the guard stopped a request: {r}" for r in state.refused]),
        notes=tuple(state.notes),
        interrupted=interrupted,
    )
    outcome = replace(outcome, exit_code=exit_code(state.results, outcome))
    out.write(report.text(state.results, outcome))
    if settings.report_dir is not None:
        for path in report.write(settings.report_dir, state.results, outcome):
            say(out, f"wrote {path}")
    out.flush()
    return outcome.exit_code


def exit_code(results: list[StepResult], outcome: report.Outcome) -> int:
    """1 when any step differs; 2 when the run could not be completed or left something behind; else 0."""
    if any(result.differences for result in results):
        return 1
    if outcome.problems or outcome.interrupted or outcome.left_behind:
        return 2
    return 0


def _compare(
    settings: DiffSettings,
    spec: Spec,
    collections: tuple[str, ...],
    deployment: Side,
    ownership: Ownership,
    state: _Run,
    out: TextIO,
) -> None:
    permissive = is_permissive_mock(deployment.http(RUN))
    if permissive:
        state.notes.append(PERMISSIVE_MOCK_NOTE)
        say(out, f"  {PERMISSIVE_MOCK_NOTE}")
    if settings.read_only:
        say(out, "  read-only: only the steps that change nothing are sent")
    else:
        say(out, f"  profiles created by this run are named {ownership.prefix}... and deleted at the end")
    with in_process_mock(settings.spec, spec, None if permissive else settings.authorization) as app:
        mock = Side(
            "mock",
            lambda authorization: WsgiHttp(app, authorization),
            settings.authorization,
            Normaliser(ownership.prefix),
        )
        walk = Walk(mock, deployment, ownership.prefix, read_only=settings.read_only)
        tour_steps = tour(spec)
        families = [("canonical paths", collections[0], CANONICAL_LETTER)]
        if settings.legacy_paths and len(collections) > 1:
            families.append(("deprecated paths", collections[1], "d"))
        for family, collection, letter in families:
            numbered = [(str(number), step) for number, step in enumerate(tour_steps, 1)]
            if not _section(f"tour, {family}", numbered, collection, letter, walk, state, out):
                return
        if settings.stateful and settings.read_only:
            state.notes.append("--stateful is left out of a read-only run: generated sequences change profiles")
        elif settings.stateful:
            from mockserver.drift import stateful

            seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
            say(out, f"\n  generating {settings.stateful} sequences with Schemathesis (seed {seed})")
            sequences = stateful.generate(settings.spec, settings.stateful, seed)
            numbered = [(f"0.{k}", step) for k, step in enumerate(stateful.PREPARE, 1)]
            numbered += stateful.steps(sequences, collections[0], ownership)
            _section(f"generated, seed {seed}", numbered, collections[0], "s", walk, state, out)


def _section(
    section: str, numbered: list[tuple[str, Step]], collection: str, letter: str, walk: Walk, state: _Run, out: TextIO
) -> bool:
    """Walk one section; False when the run must stop (the credentials lack a permission the steps need)."""
    state.sections.append(section)
    say(out, f"\n== {section}: {len(numbered)} steps ==")
    marks = []
    for number, step in numbered:
        if state.stopping:
            raise KeyboardInterrupt
        result = walk.step(section, number, step, collection, letter)
        forbidden = _forbidden(result)
        if forbidden is not None:
            # Not a difference in behaviour: the key may not do what the tour asks of it.
            result.outcome, result.reason, result.differences = SKIPPED, forbidden, []
        state.results.append(result)
        marks.append(_mark(result))
        if len(marks) == 60 or forbidden is not None:
            say(out, "  " + "".join(marks))
            marks = []
        if forbidden is not None:
            state.problems.append(forbidden)
            return False
    if marks:
        say(out, "  " + "".join(marks))
    return True


def _mark(result: StepResult) -> str:
    if result.differences:
        return "x"
    return {COMPARED: ".", SKIPPED: "s", NOT_SENT: "n"}.get(result.outcome, "?")


def _forbidden(result: StepResult) -> str | None:
    """A 403 of the deployment to the run's own credentials: the key lacks a permission the tour needs."""
    if result.step.auth != RUN or not any(d.where == "status" and d.deployment == "403" for d in result.differences):
        return None
    return (
        f"{result.request.split('  ')[0]} answered 403: the credentials lack a permission the tour needs "
        "(AccessProfiles:View, Create, Update and Delete); use --read-only without them"
    )


@contextmanager
def in_process_mock(path: Path, spec: Spec, authorization: str | None) -> Iterator[Any]:
    """A fresh mock of ``path``: strict with only ``authorization`` as a key (an admin for Basic), or
    permissive without one. The keys exist only in a private temporary file, read once and removed."""
    if authorization is None:
        yield create_app(Settings(spec=path))
        return
    with tempfile.TemporaryDirectory(prefix="mockserver-diff-") as directory:
        keys = Path(directory, "api-keys.json")
        keys.write_text(json.dumps(_keyring(authorization, spec)), encoding="utf-8")
        app = create_app(Settings(spec=path, api_keys=keys))
        keys.unlink()
    yield app


def _keyring(authorization: str, spec: Spec) -> dict[str, Any]:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user:
            return {"admins": [{"username": user, "password": password}]}
    permissions = sorted({op.permission for op in spec.operations.values()})
    return {"api_keys": [{"name": "mockserver-diff", "key": credential, "scopes": permissions}]}
