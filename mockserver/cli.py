"""``mockserver`` command line."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mockserver.domain.fixtures import FixtureError
from mockserver.domain.store import StateNotSaved
from mockserver.settings import LogFormat, ServerKind, Settings, SettingsError, ValidationMode, state_target
from mockserver.spec.document import SpecError
from mockserver.spec.errors import StoreUnavailable
from mockserver.storage.sqlite import StateFileError

if TYPE_CHECKING:
    from mockserver.server.forked import Ready

T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    from mockserver import __version__

    parser = argparse.ArgumentParser(prog="mockserver", description="Mock of the Bifrost Access Profiles API.")
    parser.add_argument("--version", action="version", version=f"mockserver {__version__}", help="print the version")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser(
        "serve",
        help="serve the mock",
        description="Serve the mock. Every option can also be set as MOCKSERVER_<OPTION> (e.g. MOCKSERVER_PORT).",
    )
    _add_listen_flags(serve)
    serve.add_argument("--fixtures", type=Path, help="seed data, JSON or YAML (default: the bundled fixtures)")
    serve.add_argument("--api-keys", type=Path, help="admins and scoped keys; turns on strict authentication")
    serve.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn an answer that breaks the contract into a 500 (default on); --no-strict logs it and sends it",
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="threads that run requests (default 8); on granian, the requests that wait: delayed answers, "
        "writes to a state file, a shared state's requests (the others run on one event loop)",
    )
    serve.add_argument(
        "--server",
        choices=_values(ServerKind),
        help="HTTP server: auto (default): granian where it runs (Linux), else waitress; granian (a Rust server, "
        "several times the throughput; Linux); waitress (pure Python, every system)",
    )
    serve.add_argument(
        "--validation",
        choices=_values(ValidationMode),
        help="fast (default): compiled validators, openapi-core when unsure; reference: openapi-core only; "
        "shadow: both, any disagreement recorded as a violation",
    )
    serve.add_argument("--latency", dest="latency_ms", type=int, help="delay every answer by this many ms")
    serve.add_argument("--error-rate", type=float, help="answer this share (0..1) of requests with a documented error")
    serve.add_argument("--seed", type=int, help="seed for --error-rate, so a chaos session can be replayed")
    serve.add_argument(
        "--max-sessions", type=int, help="most isolated sessions (X-Mockserver-Session) at once (default 100)"
    )
    serve.add_argument(
        "--session-ttl",
        type=int,
        help="drop a session after this many seconds without requests (default 3600; 0 never)",
    )
    serve.add_argument(
        "--journal-mb",
        type=int,
        help="memory the request journals of all sessions may keep together, in MiB (default 64; oldest go first)",
    )
    serve.add_argument(
        "--state",
        metavar="FILE|URL",
        help="keep the whole state across restarts: in this SQLite file (a path), or in PostgreSQL "
        "(postgresql://USER@HOST:PORT/DATABASE; a password is better kept in PGPASSWORD or ~/.pgpass), which any "
        "number of mocks share; other URLs are refused",
    )
    serve.add_argument(
        "--fresh",
        action="store_true",
        default=None,
        help="with --state (a file or PostgreSQL): start the state again from the fixtures",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="serve with N processes on one port over one shared state (default 1; granian only): the --state "
        "file or database, or else a temporary file removed when the mock stops",
    )
    serve.add_argument(
        "--instance",
        metavar="NAME",
        help="this mock's name in a shared state's journal and violations (default HOST:PID; with --workers N, "
        "the workers are NAME-1 ... NAME-N)",
    )
    serve.add_argument("--clock", help="a fixed time for the mock's clock, e.g. 2026-01-01T00:00:00Z")
    serve.add_argument(
        "--clock-ticking", action="store_true", default=None, help="with --clock: let time run from that instant"
    )
    serve.add_argument(
        "--sequential-ids", action="store_true", default=None, help="ids and key values from a counter, not random"
    )
    serve.add_argument(
        "--watch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply edits of the spec and fixture files while serving (default on)",
    )
    _add_log_flags(serve)
    serve.set_defaults(run=_serve)
    _add_contract(commands)
    _add_proxy(commands)
    _add_record(commands)
    _add_diff(commands)
    return parser


def _values(options: type[StrEnum]) -> list[str]:
    """The values a flag takes: those of its setting's enumeration."""
    return [option.value for option in options]


def _add_listen_flags(command: argparse.ArgumentParser) -> None:
    """Where the server listens, what it serves and who may call it, as `serve` and `proxy` take them."""
    command.add_argument("--host", help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    command.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    command.add_argument("--spec", type=Path, help="OpenAPI document (default: the bundled spec)")
    command.add_argument("--cors-origins", help='origins browser apps may call from: "*" (default), a list, or ""')
    command.add_argument("--control-token", help="require this bearer token on the control routes (/__mock/...)")


def _add_log_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-format",
        choices=_values(LogFormat),
        help="text (default), or one JSON object per line for log shippers",
    )
    command.add_argument("--quiet", action="store_true", default=None, help="no line per request (errors still show)")


def _add_target(command: Any) -> None:
    """The deployment and its credentials, as every command that talks to one takes them."""
    command.add_argument("--base-url", help="root URL of the deployment (or MOCKSERVER_CONTRACT_BASE_URL)")
    command.add_argument("--token", help="management API key or token (better: MOCKSERVER_CONTRACT_TOKEN)")
    command.add_argument("--basic", metavar="USER:PASS", help="admin login (better: MOCKSERVER_CONTRACT_BASIC)")


def _add_contract(commands: Any) -> None:
    contract = commands.add_parser(
        "contract",
        help="check a deployment against the spec",
        description=(
            "Check a Bifrost deployment (or a served mock) against the spec with Schemathesis and the "
            "project's own checks. Only profiles the run creates are changed, and they are deleted at the end. "
            "Exit status: 0 no failure, 1 contract failures, 2 the run could not be completed."
        ),
    )
    _add_target(contract)
    contract.add_argument("--spec", type=Path, help="OpenAPI document (default: the bundled spec)")
    contract.add_argument("--max-examples", type=int, help="generated cases per operation and phase (default 100)")
    contract.add_argument("--seed", type=int, help="seed for reproducible case generation")
    contract.add_argument("--checks", help="comma-separated checks to run (default: all)")
    contract.add_argument("--exclude-checks", help="comma-separated checks to skip")
    contract.add_argument("--phases", help="comma-separated phases (default: examples,coverage,fuzzing,stateful)")
    contract.add_argument("--operations", help="comma-separated canonical operationIds to test (default: all)")
    contract.add_argument("--report-dir", type=Path, help="write junit.xml and report.md here")
    contract.add_argument(
        "--legacy-paths",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also test the deprecated /api/access-profiles paths (default on)",
    )
    contract.add_argument(
        "--read-only", action="store_true", help="send only GET, HEAD, OPTIONS and TRACE (production)"
    )
    contract.set_defaults(run=_contract)


def _contract(args: argparse.Namespace) -> int:
    from mockserver.contract.runner import ContractError, run, settings_from

    return _run_with(args, settings_from, ContractError, run)


def _run_with(
    args: argparse.Namespace,
    settings_from: Callable[[Mapping[str, Any], Mapping[str, str]], T],
    error: type[Exception],
    run: Callable[[T], int],
) -> int:
    """``run`` on the settings the flags and the environment give; 2 after saying why they are wrong."""
    try:
        settings = settings_from(vars(args), os.environ)
    except error as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    return run(settings)


def _add_proxy(commands: Any) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="forward to a deployment and check every request and answer against the spec",
        description=(
            "Forward every request to a Bifrost deployment and check the request and the answer against the "
            "spec, as `prism proxy` does. A violation is flagged in the X-Mockserver-Violations header, "
            "/__mock/violations, the journal and the log; the answer is the upstream's unless --errors."
        ),
    )
    proxy.add_argument("--upstream", help="root URL of the deployment (or MOCKSERVER_PROXY_UPSTREAM)")
    _add_listen_flags(proxy)
    proxy.add_argument("--threads", type=int, help="worker threads (default 8)")
    proxy.add_argument(
        "--errors",
        action="store_true",
        default=None,
        help="answer 502, listing the violations, instead of an upstream answer that breaks the contract",
    )
    proxy.add_argument(
        "--reject-invalid",
        action="store_true",
        default=None,
        help="answer a request that breaks the contract here (400, 401, 404, 405, 413, 415), without forwarding it",
    )
    proxy.add_argument("--timeout", type=float, help="seconds to wait for the upstream (default 30); then 504")
    _add_log_flags(proxy)
    proxy.set_defaults(run=_proxy)


def _proxy(args: argparse.Namespace) -> int:
    from mockserver.server.logs import configure
    from mockserver.server.proxy import ProxyOptions, create_proxy_app
    from mockserver.server.serving import serve

    shared = ("host", "port", "spec", "cors_origins", "control_token", "threads", "log_format", "quiet")
    try:
        settings = Settings.from_env(**{name: getattr(args, name) for name in shared})
        options = ProxyOptions.from_env(
            upstream=args.upstream, errors=args.errors, reject_invalid=args.reject_invalid, timeout=args.timeout
        )
    except SettingsError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    writer = configure(sys.stderr, settings.log_format, settings.quiet)
    try:
        try:
            app = create_proxy_app(settings, options)
        except (SettingsError, SpecError) as exc:
            print(f"mockserver: error: {exc}", file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, _interrupt)
        modes = [m for m, on in (("--errors", options.errors), ("--reject-invalid", options.reject_invalid)) if on]
        print(f"mockserver proxy: forwarding to {options.upstream}, checking against {settings.spec}", end="")
        print(f" ({', '.join(modes)})" if modes else "", flush=True)
        _warm_up_later(app)
        try:
            serve(app, settings.host, settings.port, settings.threads, announce=lambda m: print(m, flush=True))
        except OSError as exc:
            host, port = settings.host, settings.port
            print(f"mockserver: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 2
        return 0
    finally:
        writer.stop()


def _add_record(commands: Any) -> None:
    record = commands.add_parser(
        "record",
        help="read a deployment into a fixture file for mockserver serve --fixtures",
        description=(
            "Read a Bifrost deployment with GET requests only (profiles, role attachments, versions, the audit "
            "trail, users' copies) into a fixture file that mockserver serve --fixtures loads. "
            "Exit status: 0 everything read, 1 some requests failed (listed at the end), 2 nothing recorded."
        ),
    )
    _add_target(record)
    record.add_argument("--out", type=Path, help="the fixture file to write (.json, or .yaml / .yml)")
    record.add_argument(
        "--user",
        dest="users",
        action="append",
        metavar="USER_ID",
        help="also read this user's copies (repeat it); the API cannot list users",
    )
    record.add_argument("--spec", type=Path, help="OpenAPI document (default: the bundled spec)")
    record.add_argument("--timeout", type=float, help="seconds to wait for each answer (default 30)")
    record.set_defaults(run=_record)


def _record(args: argparse.Namespace) -> int:
    from mockserver.contract.record import RecordError, RecordSettings, record, settings_from

    def recorded(settings: RecordSettings) -> int:
        def loads(path: Path) -> None:
            # The file must load as `mockserver serve --fixtures` would load it (the contract package
            # may not import the domain, so the check comes from here).
            from mockserver.domain.fixtures import load_seed
            from mockserver.spec.document import Spec

            load_seed(path, Spec.load(settings.spec))

        return record(settings, verify=loads)

    return _run_with(args, settings_from, RecordError, recorded)


def _add_diff(commands: Any) -> None:
    diff = commands.add_parser(
        "diff",
        help="compare a deployment's behaviour with the mock's, step by step",
        description=(
            "Send the same requests to a Bifrost deployment (or a served mock) and to a fresh in-process mock, "
            "and compare the answers: status, error type and param, which fields are present, and their values. "
            "Only profiles the run creates are changed, and they are deleted at the end. "
            "Exit status: 0 no difference, 1 differences, 2 the run could not be completed."
        ),
    )
    _add_target(diff)
    diff.add_argument("--spec", type=Path, help="OpenAPI document of the mock (default: the bundled spec)")
    diff.add_argument("--report-dir", type=Path, help="write junit.xml and report.md here")
    diff.add_argument(
        "--legacy-paths",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also walk the tour on the deprecated /api/access-profiles paths (default on)",
    )
    diff.add_argument(
        "--read-only", action="store_true", help="only the steps that change nothing (GET, HEAD, OPTIONS, TRACE)"
    )
    diff.add_argument(
        "--stateful",
        type=int,
        metavar="N",
        help="after the tour, also replay N sequences generated by Schemathesis's stateful phase (default 0)",
    )
    diff.add_argument("--seed", type=int, help="seed of the generated sequences, to replay the same ones")
    diff.set_defaults(run=_diff)


def _diff(args: argparse.Namespace) -> int:
    from mockserver.drift.run import DiffError, run, settings_from

    return _run_with(args, settings_from, DiffError, run)


def _serve(args: argparse.Namespace) -> int:
    from mockserver.server import forked
    from mockserver.server.logs import configure

    try:
        if args.state is not None:  # a file or a PostgreSQL URL; another URL is refused here, before anything starts
            args.state = state_target(args.state, "--state")
        # Flags are named after the settings they set; an absent flag leaves the variable or default.
        settings = Settings.from_env(**{f.name: getattr(args, f.name, None) for f in fields(Settings)})
        on_granian = _on_granian(settings.server, forked.available())
        if settings.workers > 1 and not on_granian:
            raise SettingsError(_WORKERS_NEED_GRANIAN if forked.available() else _WORKERS_NEED_FORK)
    except SettingsError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    # Log lines are written by one thread of their own; stop() writes what is queued (Ctrl-C, SIGTERM, exit).
    writer = configure(sys.stderr, settings.log_format, settings.quiet)
    try:
        warning = exposure_warning(settings)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        try:
            if on_granian:
                return _serve_on_granian(settings)
            return _serve_on_waitress(settings)
        except StateFileError as exc:  # the state file is in use (--workers N: held by this process)
            print(f"mockserver: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            host, port = settings.host, settings.port
            print(f"mockserver: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 2
    finally:
        writer.stop()


_WORKERS_NEED_GRANIAN = "--workers N (more than 1) runs on granian only; leave out --server waitress (or --workers)"
_WORKERS_NEED_FORK = (
    "--workers N (more than 1) needs granian, which runs only where processes fork (Linux); leave out --workers"
)


def _on_granian(kind: ServerKind, available: bool) -> bool:
    """Whether to serve on granian: asked for (and available), or by default wherever it is available."""
    if kind is ServerKind.GRANIAN and not available:
        raise SettingsError("--server granian runs only where processes fork (Linux); use --server waitress")
    return kind is ServerKind.GRANIAN or (kind is ServerKind.AUTO and available)


def _say(message: str) -> None:
    print(message, flush=True)


def _built(settings: Settings) -> tuple[Any, bool]:
    """The app, and whether it took up a kept state; ``SystemExit(2)`` after saying why it cannot start."""
    restored = _kept(settings)  # asked before create_app makes the file
    app = _created(settings)
    if settings.watch:
        from mockserver.server.reload import Reloader

        Reloader(app).start()
    # What the start built (the spec, its validators, the fixtures) lives as long as the process: out of
    # the garbage collector's full passes, which otherwise walk it all and stall requests (POST p99 halved).
    gc.freeze()
    _warm_up_later(app)
    return app, restored


def _serve_on_granian(settings: Settings) -> int:
    """granian's workers build the app (one of them owns the state file); see server/forked.py.

    With ``--workers N``, this process first gets the state they share ready: it holds the SQLite file
    (or makes a temporary one), and builds the app once, so that the layout, ``--fresh`` and the seed
    happen once and not in N racing workers; the workers then start from what it left.
    """
    from dataclasses import replace

    from mockserver.server import forked

    restored = _kept(settings)  # asked before the file is made
    if settings.workers > 1:
        # Until granian takes the signals over, SIGTERM stops the start as Ctrl-C does, through the
        # cleanup of shared_state (which removes a temporary file).
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        with forked.shared_state(settings) as shared:
            if shared.workers > 1:
                try:
                    _prepare(shared)
                except SystemExit:
                    return 2
                shared = replace(shared, fresh=False)
            temporary = settings.state is None and shared.state is not None

            def build(url: str, number: int) -> tuple[Any, list[str]]:
                return _worker_app(shared, url, number, restored, temporary)

            return forked.serve(
                build,
                shared.host,
                shared.port,
                shared.threads,
                _say,
                workers=shared.workers,
                started=lambda ready: _started(shared, ready),
            )
    except KeyboardInterrupt:  # stopped before granian started
        _say("mockserver stopped")
        return 0


def _kept(settings: Settings) -> bool:
    """Whether the start takes up a state kept by an earlier run (the banner says so)."""
    return settings.state is not None and settings.state.exists() and not settings.fresh


def _created(settings: Settings) -> Any:
    """``create_app(settings)``; ``SystemExit(2)`` after saying why the mock cannot start."""
    from mockserver.server.app import create_app

    try:
        return create_app(settings)
    except (SettingsError, SpecError, FixtureError, StateFileError, StateNotSaved) as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except StoreUnavailable as exc:  # the database of --state postgresql://... (its message shows no password)
        print(f"mockserver: error: {exc.message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _prepare(settings: Settings) -> None:
    """Build the app once here, before the workers start, then let go of its state; ``SystemExit(2)``
    after saying why the mock cannot start."""
    mock = _created(settings).extensions["mockserver"]
    mock.store.close()
    mock.journal.close()  # in a shared state, its connections to the shared log


def instance_of(settings: Settings, number: int, pid: int) -> str:
    """Worker ``number``'s name in the shared state: ``--instance`` (NAME-k with several workers), or
    the host's name and the worker's process id."""
    if settings.instance is None:
        import socket

        return f"{socket.gethostname()}:{pid}"
    return settings.instance if settings.workers == 1 else f"{settings.instance}-{number}"


def _worker_app(settings: Settings, url: str, number: int, restored: bool, temporary: bool) -> tuple[Any, list[str]]:
    """In a granian worker: its own log writer (written out as the worker exits), the app, the banner."""
    import multiprocessing.util
    from dataclasses import replace

    from mockserver.server import banner
    from mockserver.server.logs import configure

    settings = replace(settings, instance=instance_of(settings, number, os.getpid()))
    writer = configure(sys.stderr, settings.log_format, settings.quiet)
    multiprocessing.util.Finalize(writer, writer.stop, exitpriority=10)
    app, _ = _built(settings)
    lines = banner.lines(app.extensions["mockserver"], url, restored=restored, temporary=temporary)
    return app, [f"mockserver listening on {url}  (Ctrl-C to stop)", "", *lines, ""]


def _started(settings: Settings, ready: list[Ready]) -> str:
    """What ``mockserver serve`` announces once its workers are ready: the first one's lines, and with
    several, a line naming them."""
    from mockserver.server import banner

    lines = list(ready[0].lines)
    if len(ready) > 1:
        names = [instance_of(settings, worker.number, worker.pid) for worker in ready]
        lines[-1:-1] = [banner.workers_row(names)]
    return "\n".join(lines)


def _serve_on_waitress(settings: Settings) -> int:
    from mockserver.server import banner
    from mockserver.server.serving import serve

    try:
        app, restored = _built(settings)
    except SystemExit:
        return 2
    # A service manager stops us with SIGTERM; treat it like Ctrl-C so the socket closes cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    announce = banner.announcer(app.extensions["mockserver"], restored, _say)
    serve(app, settings.host, settings.port, settings.threads, announce=announce)
    return 0


def exposure_warning(settings: Settings) -> str | None:
    """What a mock reachable from other machines without a control token exposes, and how to close it."""
    if settings.control_token or _is_loopback(settings.host):
        return None
    return (
        f"mockserver: warning: listening on {settings.host} without --control-token: anyone who can reach "
        "this port can read the whole state (/__mock/state, /__mock/journal), reset it (/__mock/reset), save and "
        "restore snapshots (/__mock/snapshots), and create, list and delete sessions (/__mock/sessions). "
        "Close them with --control-token TOKEN (or MOCKSERVER_CONTROL_TOKEN), or bind to 127.0.0.1."
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to any interface


def _warm_up_later(app: Any) -> None:
    """openapi-core explains refused requests: load it two seconds after the start, not on the first error."""
    warm = threading.Timer(2.0, _load_reference_validator, args=(app,))
    warm.daemon = True
    warm.start()


def _load_reference_validator(app: Any) -> None:
    import mockserver.spec.reference  # noqa: F401

    app.extensions["mockserver"].spec.openapi  # noqa: B018 - builds it
    gc.freeze()  # as the start's objects: openapi-core's lives as long


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
