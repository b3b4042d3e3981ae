"""``mockserver`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from mockserver.domain.fixtures import FixtureError
from mockserver.domain.store import StateNotSaved
from mockserver.server.persistence import StateFileError
from mockserver.settings import Settings, SettingsError
from mockserver.spec.document import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mockserver", description="Mock of the Bifrost Access Profiles API.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser(
        "serve",
        help="serve the mock",
        description="Serve the mock. Every option can also be set as MOCKSERVER_<OPTION> (e.g. MOCKSERVER_PORT).",
    )
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--spec", type=Path, help="OpenAPI document (default: the bundled spec)")
    serve.add_argument("--fixtures", type=Path, help="seed data, JSON or YAML (default: the bundled fixtures)")
    serve.add_argument("--api-keys", type=Path, help="admins and scoped keys; turns on strict authentication")
    serve.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn an answer that breaks the contract into a 500 (default on); --no-strict logs it and sends it",
    )
    serve.add_argument("--threads", type=int, help="worker threads (default 8)")
    serve.add_argument(
        "--validation",
        choices=["fast", "reference", "shadow"],
        help="fast (default): compiled validators, openapi-core when unsure; reference: openapi-core only; "
        "shadow: both, any disagreement recorded as a violation",
    )
    serve.add_argument("--cors-origins", help='origins browser apps may call from: "*" (default), a list, or ""')
    serve.add_argument("--latency", dest="latency_ms", type=int, help="delay every answer by this many ms")
    serve.add_argument("--error-rate", type=float, help="answer this share (0..1) of requests with a documented error")
    serve.add_argument("--seed", type=int, help="seed for --error-rate, so a chaos session can be replayed")
    serve.add_argument("--control-token", help="require this bearer token on the control routes (/__mock/...)")
    serve.add_argument(
        "--max-sessions", type=int, help="most isolated sessions (X-Mockserver-Session) at once (default 100)"
    )
    serve.add_argument(
        "--session-ttl",
        type=int,
        help="drop a session after this many seconds without requests (default 3600; 0 never)",
    )
    serve.add_argument("--state", type=Path, help="keep the whole state in this SQLite file across restarts")
    serve.add_argument("--fresh", action="store_true", default=None, help="with --state: start again from the fixtures")
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
    serve.set_defaults(run=_serve)
    _add_contract(commands)
    return parser


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
    contract.add_argument("--base-url", help="root URL of the deployment (or MOCKSERVER_CONTRACT_BASE_URL)")
    contract.add_argument("--token", help="management API key or token (better: MOCKSERVER_CONTRACT_TOKEN)")
    contract.add_argument("--basic", metavar="USER:PASS", help="admin login (better: MOCKSERVER_CONTRACT_BASIC)")
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
    import os

    from mockserver.contract.runner import ContractError, run, settings_from

    try:
        settings = settings_from(vars(args), os.environ)
    except ContractError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    return run(settings)


def _serve(args: argparse.Namespace) -> int:
    from mockserver.server.app import create_app
    from mockserver.server.serving import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # waitress warns for every request that waits for a thread under load; one request line is enough.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        # Flags are named after the settings they set; an absent flag leaves the variable or default.
        settings = Settings.from_env(**{f.name: getattr(args, f.name, None) for f in fields(Settings)})
        app = create_app(settings)
    except (SettingsError, SpecError, FixtureError, StateFileError, StateNotSaved) as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    warning = exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    # A service manager stops us with SIGTERM; treat it like Ctrl-C so the socket closes cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    if settings.watch:
        from mockserver.server.reload import Reloader

        Reloader(app).start()
    # openapi-core explains refused requests; load it once the server is up, not on the first error.
    warm = threading.Timer(2.0, _load_reference_validator, args=(app,))
    warm.daemon = True
    warm.start()
    try:
        serve(app, settings.host, settings.port, settings.threads, announce=lambda m: print(m, flush=True))
    except OSError as exc:
        print(f"mockserver: error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 2
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


def _load_reference_validator(app: Any) -> None:
    import mockserver.spec.reference  # noqa: F401

    app.extensions["mockserver"].spec.openapi  # noqa: B018 - builds it


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
