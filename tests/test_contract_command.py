"""``mockserver contract`` as CI runs it: options, exit codes, and what a run leaves behind on the API."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from broken_variants import hiding_the_health_route
from conftest import ADMIN_TOKEN, CANONICAL, VIEWER_TOKEN
from serving import ROOT, Served, run_mockserver, serve

from mockserver import Settings, Spec, create_app
from mockserver.contract.http import WsgiHttp
from mockserver.contract.report import Outcome
from mockserver.contract.results import Results
from mockserver.contract.runner import (
    PERMISSIVE_MOCK_NOTE,
    ContractError,
    ContractSettings,
    exit_code,
    is_permissive_mock,
    plan,
    schemathesis_arguments,
    settings_from,
    without_check,
)
from mockserver.contract.runner import run as contract_run
from mockserver.resources import bundled_api_keys

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SAFE_LOG_LINE = re.compile(r"^\S+ (GET|OPTIONS|TRACE) ")
REQUEST_LOG_LINE = re.compile(r"^\S+ [A-Z]+ /")


# -- options -----------------------------------------------------------------------------------------


def test_the_url_and_credentials_may_come_from_the_environment() -> None:
    env = {"MOCKSERVER_CONTRACT_BASE_URL": "http://api.test", "MOCKSERVER_CONTRACT_TOKEN": "secret"}
    settings = settings_from({}, env)
    assert (settings.base_url, settings.authorization) == ("http://api.test", "Bearer secret")
    assert settings_from({"token": "flag"}, env).authorization == "Bearer flag"
    basic = settings_from({"basic": "admin:bifrost-admin"}, {"MOCKSERVER_CONTRACT_BASE_URL": "http://api.test"})
    assert basic.authorization == "Basic YWRtaW46Ymlmcm9zdC1hZG1pbg=="


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({}, {}, "--base-url is required (or set MOCKSERVER_CONTRACT_BASE_URL)"),
        ({"base_url": "http://x", "token": "t", "basic": "a:b"}, {}, "not both"),
        ({"base_url": "http://x"}, {"MOCKSERVER_CONTRACT_BASIC": "admin"}, "written user:password"),
    ],
)
def test_options_that_cannot_work_are_refused(options: dict[str, str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        settings_from(options, env)


def test_a_run_tests_each_path_family_in_a_pass_of_its_own(spec: Spec) -> None:
    passes = plan(spec, ContractSettings(base_url="http://x"))
    assert [family for family, _ in passes] == ["canonical", "deprecated"]
    canonical = set(passes[0][1])
    # Every operation on profiles (and every read) is planned; changes to users' copies and keys never
    # are. The deprecated family has no twin of addUserVirtualKey or getMyVirtualKeyCreationPolicy.
    assert len(canonical) == 18 and [len(ids) for _, ids in passes] == [18, 17]
    assert {"updateAccessProfile", "propagateAccessProfile", "attachRolesToAccessProfile"} <= canonical
    assert {"listUserAccessProfiles", "listUserVirtualKeys", "getMyVirtualKeyCreationPolicy"} <= canonical
    assert "listUserVirtualKeysLegacy" in passes[1][1]
    assert not canonical & {
        "detachUserAccessProfile",
        "updateUserAccessProfileBudgetOverride",
        "deleteUserAccessProfileBudgetOverride",
        "addUserAccessProfileVirtualKey",
        "deleteUserAccessProfileVirtualKey",
        "addUserVirtualKey",
    }
    assert all(op.endswith("Legacy") for op in passes[1][1]) and not any(op.endswith("Legacy") for op in passes[0][1])
    assert len(plan(spec, ContractSettings(base_url="http://x", legacy_paths=False))) == 1


def test_operations_are_chosen_by_canonical_id_and_read_only_keeps_the_reads(spec: Spec) -> None:
    chosen = plan(spec, ContractSettings(base_url="http://x", operations=("updateAccessProfile",)))
    assert chosen == [("canonical", ["updateAccessProfile"]), ("deprecated", ["updateAccessProfileLegacy"])]
    read_only = plan(spec, ContractSettings(base_url="http://x", read_only=True, legacy_paths=False))
    assert read_only == [
        (
            "canonical",
            [
                "getAccessProfile",
                "getAccessProfileVersion",
                "getMyVirtualKeyCreationPolicy",
                "listAccessProfileAuditLogs",
                "listAccessProfileAuditLogsById",
                "listAccessProfileVersions",
                "listAccessProfiles",
                "listUserAccessProfiles",
                "listUserVirtualKeys",
            ],
        )
    ]
    with pytest.raises(
        ContractError, match="unknown operation nope; choose from activateAccessProfile, addUserAccessProfileVirtualKey"
    ):
        plan(spec, ContractSettings(base_url="http://x", operations=("nope",)))
    with pytest.raises(ContractError, match="no operation left"):
        plan(spec, ContractSettings(base_url="http://x", operations=("updateAccessProfile",), read_only=True))


def test_a_run_with_basic_credentials_leaves_out_the_operations_that_take_a_bearer_token_only(spec: Spec) -> None:
    bearer_only = {"getMyVirtualKeyCreationPolicy"}  # addUserVirtualKey is a change to a user: never planned
    with_token = {
        i for _, ids in plan(spec, ContractSettings(base_url="http://x", authorization="Bearer t")) for i in ids
    }
    with_basic = {
        i for _, ids in plan(spec, ContractSettings(base_url="http://x", authorization="Basic YTpi")) for i in ids
    }
    assert with_token - with_basic == bearer_only


def test_credentials_reach_schemathesis_only_when_given(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    with_token = schemathesis_arguments(
        ContractSettings(base_url="http://x", authorization="Bearer t", seed=3), config, ["getAccessProfile"]
    )
    assert with_token[:3] == ["--config-file", str(config), "run"]
    assert "Authorization: Bearer t" in with_token and with_token[-2:] == ["--seed", "3"]
    assert "--header" not in schemathesis_arguments(ContractSettings(base_url="http://x"), config, [])


def outcome(**problems: tuple[str, ...]) -> Outcome:
    return Outcome(target="x", prefix="p", read_only=False, seconds=1.0, exit_code=0, **problems)  # type: ignore[arg-type]


def test_the_exit_code_says_failures_first_then_whether_the_run_completed() -> None:
    clean, failed, stopped = Results(), Results(), Results(interrupted=True)
    failed.add_failure("GET /x", "not_a_server_error", "Server error", "500", None)
    assert exit_code(clean, outcome(), [0, 0]) == 0
    assert exit_code(failed, outcome(), [1, 0]) == 1
    assert exit_code(failed, outcome(left_behind=("profile 3",)), [1]) == 1
    assert exit_code(clean, outcome(problems=("cannot reach the API",)), []) == 2
    assert exit_code(stopped, outcome(), [130]) == 2
    assert exit_code(clean, outcome(refusals=("PUT /x",)), [0]) == 2
    assert exit_code(clean, outcome(left_behind=("profile 3",)), [0]) == 2
    assert exit_code(clean, outcome(), [0, 2]) == 2
    assert exit_code(clean, outcome(), [1]) == 1  # e.g. every answer was 401 (a warning made fatal)


def test_only_the_mock_itself_can_say_it_accepts_any_credential() -> None:
    """``/__mock/health`` of a permissive mock says so; a strict mock, or anything that hides the
    route (a deployment, a proxy in front of the mock), keeps ``ignored_auth`` in the run."""
    permissive = create_app(Settings())
    assert is_permissive_mock(WsgiHttp(permissive, "Bearer dev"))
    assert not is_permissive_mock(WsgiHttp(create_app(Settings(api_keys=bundled_api_keys())), "Bearer dev"))
    assert not is_permissive_mock(WsgiHttp(hiding_the_health_route(permissive), "Bearer dev"))


def test_a_check_is_left_out_by_adding_it_to_the_excluded_ones() -> None:
    settings = ContractSettings(base_url="http://x")
    assert without_check(settings, "ignored_auth").exclude_checks == "ignored_auth"
    given = ContractSettings(base_url="http://x", exclude_checks="not_a_server_error, ignored_auth")
    assert without_check(given, "ignored_auth").exclude_checks == "not_a_server_error,ignored_auth"


# -- runs ------------------------------------------------------------------------------------------


def contract(url: str | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    base = ["--base-url", url] if url else []
    return run_mockserver("contract", *base, *args, env={**clean_env, **(env or {})}, timeout=900)


@pytest.fixture(scope="module")
def strict_mock() -> Iterator[Served]:
    with serve("--api-keys", str(ROOT / "fixtures" / "api-keys.json")) as server:
        yield server


@pytest.fixture
def mock(strict_mock: Served) -> Served:
    requests.post(f"{strict_mock.url}/__mock/reset", timeout=10).raise_for_status()
    return strict_mock


def profiles_as_served(url: str) -> list[bytes]:
    return [requests.get(f"{url}{CANONICAL}/{i}", headers=AUTH, timeout=10).content for i in range(1, 11)]


def left_by_runs(url: str) -> int:
    page = requests.get(f"{url}{CANONICAL}", params={"search": "mockserver-contract-"}, headers=AUTH, timeout=10)
    return int(page.json()["total_count"])


def requests_logged(server: Served, since: int) -> list[str]:
    return [line.strip() for line in server.lines[since:] if REQUEST_LOG_LINE.match(line)]


@pytest.mark.slow
def test_an_unreachable_api_is_reported_and_exits_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = contract(f"http://127.0.0.1:{port}", "--token", "t")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Could not run: cannot reach the API: GET http://127.0.0.1:" in result.stdout
    assert "exit 2 (the run could not be completed)" in result.stdout


@pytest.mark.slow
def test_a_spec_that_cannot_be_read_stops_the_run(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("openapi: 2.0\n", encoding="utf-8")
    result = contract("http://127.0.0.1:9", "--spec", str(spec))
    assert result.returncode == 2
    assert f"mockserver contract: error: {spec}: expected an OpenAPI 3.x document" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "answered 401: credentials missing or refused. Pass --token or --basic"),
        (("--token", "not-a-key"), {}, "answered 401: credentials missing or refused"),
        ((), {"MOCKSERVER_CONTRACT_BASIC": "admin:wrong"}, "answered 401"),
        (("--token", VIEWER_TOKEN), {}, "Changes need AccessProfiles:Create, Update and Delete; use --read-only"),
    ],
    ids=["no-credentials", "unknown-key", "wrong-password", "key-without-write-permissions"],
)
def test_credentials_that_do_not_work_stop_the_run_before_any_test(
    mock: Served, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """A run in which every answer would be 401 (or 403) never passes: it exits 2 and says why."""
    result = contract(mock.url, *args, env=env)
    assert result.returncode == 2, result.stdout[-3000:]
    assert message in result.stdout
    assert "Schemathesis" not in result.stdout  # stopped before the first pass
    assert left_by_runs(mock.url) == 0


@pytest.mark.slow
def test_a_read_only_run_sends_nothing_that_changes_anything(mock: Served) -> None:
    since = len(mock.lines)
    result = contract(mock.url, "--read-only", "--max-examples", "5", "--seed", "7", "--token", VIEWER_TOKEN)
    assert result.returncode == 0, result.stdout[-5000:]
    sent = requests_logged(mock, since)
    assert len(sent) > 100
    assert [line for line in sent if not SAFE_LOG_LINE.match(line)] == []
    assert "read-only: only GET, HEAD, OPTIONS and TRACE requests will be sent" in result.stdout


@pytest.mark.slow
def test_the_served_mock_passes_and_keeps_every_profile_it_did_not_give_the_run(mock: Served, tmp_path: Path) -> None:
    """Every phase, both path families, every check: exit 0. The ten fixture profiles are byte for
    byte what they were, and nothing the run created is left."""
    before = profiles_as_served(mock.url)
    since = len(mock.lines)
    result = contract(
        mock.url, "--max-examples", "5", "--seed", "20261126", "--report-dir", str(tmp_path / "report"),
        env={"MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-8000:]
    assert profiles_as_served(mock.url) == before
    assert left_by_runs(mock.url) == 0
    assert requests.get(f"{mock.url}{CANONICAL}", headers=AUTH, timeout=10).json()["total_count"] == 10
    assert requests.get(f"{mock.url}/__mock/violations", timeout=10).json()["violations"] == []
    # every phase ran on both families, and changes went only to the run's own profiles
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert output.count(f"✅  {phase}") == 2, phase
    changes = [line for line in requests_logged(mock, since) if not SAFE_LOG_LINE.match(line)]
    assert len(changes) > 500
    assert not [line for line in changes if re.search(r"/access-profiles/([1-9]|10)(/\w+)? ", line)]
    assert "Refused by the guard" not in output
    # the summary, and the reports CI publishes
    assert "  canonical   PUT /api/governance/access-profiles/{profile_id}" in output
    assert re.search(r"Result: \d+ cases, 0 failures; exit 0 \(no contract failure\)", output)
    junit = ET.parse(tmp_path / "report" / "junit.xml").getroot()
    # 18 canonical operations, 17 deprecated ones (upstream has no twin of the mint or the policy), and
    # the run itself
    assert len(list(junit.iter("testcase"))) == 18 + 17 + 2
    assert not list(junit.iter("failure")) and not list(junit.iter("error"))
    assert "exit 0 (no contract failure)" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_an_interrupted_run_still_deletes_what_it_created(mock: Served) -> None:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    command = [sys.executable, "-m", "mockserver", "contract", "--base-url", mock.url, "--token", ADMIN_TOKEN]
    with subprocess.Popen(
        command, cwd=ROOT, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if "Examples" in line:  # into the first pass: the run has created profiles by now
                break
        process.send_signal(signal.SIGINT)
        output = process.stdout.read()
        assert process.wait(timeout=120) == 2, output[-5000:]
    assert "The run was interrupted." in output
    created = re.search(r"profiles: +(\d+) created by this run", output)
    assert created is not None and int(created.group(1)) >= 1
    assert left_by_runs(mock.url) == 0


@pytest.mark.slow
def test_ctrl_c_while_schemathesis_starts_a_phase_still_ends_the_run(
    mock: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in CI: Schemathesis 4.32 swallows a KeyboardInterrupt raised while a phase starts its
    worker threads, goes on to the next phase and leaves the worker running beside it. Our handler
    also marks the run as stopping, so the hooks send no further case and the run ends interrupted,
    with its profiles deleted. The signal here arrives exactly there: as the coverage phase starts."""
    from schemathesis.engine.run.unit import _pool

    started = _pool.WorkerPool.start
    phases: list[str] = []
    signalled_at: list[int] = []

    def start_then_ctrl_c(pool: Any) -> None:
        started(pool)
        phases.append(str(pool.phase))
        if len(phases) == 2:
            signalled_at.append(len(mock.lines))
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_pool.WorkerPool, "start", start_then_ctrl_c)
    out = io.StringIO()
    began = time.monotonic()
    code = contract_run(ContractSettings(base_url=mock.url, authorization=f"Bearer {ADMIN_TOKEN}"), out)
    output = out.getvalue()
    assert signalled_at, phases
    assert code == 2, output[-5000:]
    assert "The run was interrupted." in output
    assert time.monotonic() - began < 45  # a whole run takes about 90 s here
    assert left_by_runs(mock.url) == 0
    # After the signal only what was already in flight (a case and its checks' own requests), then the cleanup.
    after = requests_logged(mock, signalled_at[0])
    changes = [line for line in after if not re.match(r"^\S+ (GET|OPTIONS|TRACE|DELETE) ", line)]
    assert len(changes) <= 6, changes
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run gave Ctrl-C back


@pytest.mark.slow
def test_a_probe_the_guard_would_refuse_is_reported_as_not_sent_and_the_run_passes(
    mock: Served, tmp_path: Path
) -> None:
    """Schemathesis probes ``PATCH``, ``PUT``, ``DELETE`` and ``QUERY`` on ``.../roles`` with the attach
    example, which makes the profile a role's default. The guard refuses them; the run says they were
    not sent, with the reason, and passes: no error, no defect, exit 0."""
    since = len(mock.lines)
    result = contract(
        mock.url, "--operations", "attachRolesToAccessProfile", "--phases", "coverage", "--no-legacy-paths",
        "--max-examples", "5", "--seed", "1", "--report-dir", str(tmp_path),
        env={"MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-6000:]
    reason = "/roles: attaching with is_default or apply_to_existing would change other profiles or users"
    line = r"^Not sent: would change data the run does not own: (\w+) http://\S+" + re.escape(reason)
    assert sorted(re.findall(line, output, re.M)) == ["DELETE", "PATCH", "PUT", "QUERY"]
    assert "not sent:   4 generated requests that would change data the run does not own" in output
    assert "Refused by the guard" not in output and "Error:" not in output and "Network Error" not in output
    # not sent indeed: on .../roles the mock saw the attach itself and probes that change nothing
    roles = [line.split()[1] for line in requests_logged(mock, since) if "/roles " in line]
    assert {"POST", "GET", "OPTIONS"} <= set(roles) <= {"POST", "GET", "OPTIONS", "TRACE"}
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert report.count("- Not sent: would change data the run does not own: ") == 4
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert not list(junit.iter("error")) and not list(junit.iter("failure"))


@pytest.mark.slow
def test_the_permissive_mock_passes_with_a_note_on_ignored_auth(tmp_path: Path) -> None:
    """``make serve`` (permissive), then ``mockserver contract --token dev``: the run leaves ``ignored_auth``
    out, says so once with the way to run strict, and passes. (The variant ``any-credential-accepted``
    of test_contract_variants.py hides ``/__mock/health`` and fails ``ignored_auth`` in the same run.)"""
    with serve() as permissive:
        result = contract(
            permissive.url, "--token", "dev", "--operations", "getAccessProfile",
            "--phases", "examples,coverage,fuzzing", "--no-legacy-paths", "--max-examples", "5", "--seed", "1",
            "--report-dir", str(tmp_path),
        )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-6000:]
    assert output.count(PERMISSIVE_MOCK_NOTE) == 2  # at the start, and in the summary
    assert "mockserver serve --api-keys fixtures/api-keys.json" in PERMISSIVE_MOCK_NOTE
    assert "ignored_auth" not in output.replace(PERMISSIVE_MOCK_NOTE, "")
    assert re.search(r"Result: \d+ cases, 0 failures; exit 0", output)
    assert PERMISSIVE_MOCK_NOTE in (tmp_path / "report.md").read_text(encoding="utf-8")
