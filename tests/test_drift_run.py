"""``mockserver diff`` as a command: options, exit codes, the report, and what a run leaves on the deployment.

Most runs here are in-process: the "deployment" is another app built by ``create_app`` (strict, with
the example keys), reached through ``WsgiHttp``; one run goes through the CLI to a served mock.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from broken_variants import BY_NAME
from conftest import ADMIN_TOKEN, CANONICAL, VIEWER_TOKEN, basic
from flask import Flask
from serving import ROOT, run_mockserver, serve

from mockserver import Settings, create_app
from mockserver.contract.http import Answer, Http, WsgiHttp
from mockserver.drift.run import PERMISSIVE_MOCK_NOTE, DiffError, DiffSettings, run, settings_from
from mockserver.drift.tour import tour
from mockserver.resources import bundled_api_keys, bundled_spec
from mockserver.spec.document import Spec

AUTH = f"Bearer {ADMIN_TOKEN}"
TOUR = tour(Spec.load(bundled_spec()))
STEPS = len(TOUR)
CHANGING = sum(1 for step in TOUR if step.changes)
# Steps of operations upstream mounts no deprecated path for: walked on the canonical family only.
CANONICAL_ONLY = sum(1 for step in TOUR if step.canonical_only)


class Recording:
    """An Http to an in-process app that remembers what it sent, and can stop the run midway."""

    def __init__(self, app: Any, authorization: str | None, sent: list[str], on_request: Callable[[], None]) -> None:
        self._http = WsgiHttp(app, authorization)
        self._sent = sent
        self._on_request = on_request

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None) -> Answer:
        self._on_request()
        self._sent.append(f"{method} {path}")
        return self._http.request(method, path, body=body, query=query)


def diff(
    app: Any, authorization: str | None = AUTH, on_request: Callable[[], None] = lambda: None, **options: Any
) -> tuple[int, str, list[str]]:
    """Run ``mockserver diff`` in-process against ``app``; (exit code, output, requests sent to it)."""
    sent: list[str] = []
    out = io.StringIO()

    def connect(auth: str | None) -> Http:
        return Recording(app, auth, sent, on_request)

    code = run(DiffSettings(base_url="http://deployment.test", authorization=authorization, **options), out, connect)
    return code, out.getvalue(), sent


def left_by_runs(app: Flask) -> list[str]:
    page = app.test_client().get(
        CANONICAL, query_string={"search": "mockserver-diff-"}, headers={"Authorization": AUTH}
    )
    return [profile["name"] for profile in page.get_json()["access_profiles"]]


def fixture_bytes(app: Flask) -> list[bytes]:
    client = app.test_client()
    return [client.get(f"{CANONICAL}/{i}", headers={"Authorization": AUTH}).get_data() for i in range(1, 11)]


@pytest.fixture
def deployment(make_app: Callable[..., Flask]) -> Flask:
    """A strict mock standing in for a deployment (the example keys)."""
    return make_app(api_keys=bundled_api_keys())


# -- options ---------------------------------------------------------------------------------------


def test_the_url_and_credentials_come_from_flags_or_the_contract_variables() -> None:
    env = {"MOCKSERVER_CONTRACT_BASE_URL": "http://api.test", "MOCKSERVER_CONTRACT_TOKEN": "secret"}
    settings = settings_from({"stateful": 3, "seed": 7}, env)
    assert (settings.base_url, settings.authorization, settings.stateful, settings.seed) == (
        "http://api.test",
        "Bearer secret",
        3,
        7,
    )
    assert settings_from({"base_url": "http://x", "basic": "admin:pw"}, {}).authorization == "Basic YWRtaW46cHc="


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "--base-url is required (or set MOCKSERVER_CONTRACT_BASE_URL)"),
        ({"base_url": "http://x", "token": "t", "basic": "a:b"}, "not both"),
        ({"base_url": "http://x", "basic": "admin"}, "written user:password"),
        ({"base_url": "http://x", "stateful": -1}, "--stateful takes a number of sequences"),
    ],
)
def test_options_that_cannot_work_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DiffError, match=re.escape(message)):
        settings_from(options, {})


# -- runs ------------------------------------------------------------------------------------------


def test_the_mock_compared_with_itself_differs_nowhere_and_keeps_everything_else(deployment: Flask) -> None:
    before = fixture_bytes(deployment)
    code, output, sent = diff(deployment)
    assert code == 0, output[-4000:]
    assert f"Result: {2 * STEPS - CANONICAL_ONLY} steps compared, 0 with differences; exit 0 (no difference)" in output
    assert CANONICAL_ONLY == 4
    # a key was minted only for the run's made-up user, who holds no profile (404 on both sides)
    minted = [line for line in sent if line.startswith("POST ") and "/virtual-keys" in line]
    assert len(minted) == 2 and all(
        re.fullmatch(r"POST /api/governance/users/mockserver-diff-\w+-c-user/virtual-keys", m) for m in minted
    )
    assert re.search(r"tour, canonical paths +\d+ +\d+ +0 +0 +0", output)
    # the steps of operations with no deprecated path are skipped there, not compared
    assert re.search(rf"tour, deprecated paths +{STEPS} +{STEPS - CANONICAL_ONLY} +{CANONICAL_ONLY} +0 +0", output)
    assert fixture_bytes(deployment) == before
    assert left_by_runs(deployment) == []
    assert any(line.startswith("PUT /api/access-profiles/") for line in sent)  # both path families
    # every change went to the collection or to a profile the run created (ids above the fixtures' 1..10)
    changes = [line for line in sent if not line.startswith(("GET ", "OPTIONS "))]
    assert not [line for line in changes if re.search(r"/access-profiles/([1-9]|10)(/|$)", line)]


def test_a_read_only_run_sends_nothing_that_changes_anything(deployment: Flask) -> None:
    code, output, sent = diff(deployment, read_only=True, legacy_paths=False)
    assert code == 0, output[-4000:]
    assert sent and all(line.split()[0] in ("GET", "OPTIONS") for line in sent)
    assert "read-only: only the steps that change nothing are sent" in output
    # the steps about a profile the tour would have created are skipped too: only what needs none is compared
    assert re.search(rf"tour, canonical paths +{STEPS} +\d+ +(\d+) +0 +0", output)
    assert left_by_runs(deployment) == []


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "answered 401: credentials missing or refused. Pass --token or --basic"),
        (
            f"Bearer {VIEWER_TOKEN}",
            "answered 403: the credentials lack a permission the tour needs (AccessProfiles:View, Create, Update "
            "and Delete); use --read-only without them",
        ),
    ],
    ids=["no-credentials", "key-without-write-permissions"],
)
def test_credentials_that_do_not_work_stop_the_run(deployment: Flask, authorization: str | None, message: str) -> None:
    code, output, _ = diff(deployment, authorization)
    assert code == 2, output[-3000:]
    assert message in output
    assert "exit 2 (the run could not be completed)" in output
    assert left_by_runs(deployment) == []


def test_an_unreachable_deployment_exits_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = io.StringIO()
    assert run(DiffSettings(base_url=f"http://127.0.0.1:{port}", authorization=AUTH, timeout=5), out) == 2
    assert f"Could not complete: cannot reach the API: GET http://127.0.0.1:{port}" in out.getvalue()


def test_ctrl_c_during_the_tour_still_deletes_what_the_run_created(deployment: Flask) -> None:
    count = [0]

    def ctrl_c_at_the_thirtieth_request() -> None:
        count[0] += 1
        if count[0] == 30:
            signal.raise_signal(signal.SIGINT)

    code, output, sent = diff(deployment, on_request=ctrl_c_at_the_thirtieth_request)
    assert code == 2, output[-3000:]
    assert "The run was interrupted." in output
    created = re.search(r"profiles: +(\d+) created on the deployment by this run", output)
    assert created is not None and int(created.group(1)) >= 2
    assert left_by_runs(deployment) == []
    assert sent[-1].startswith("DELETE ")  # the cleanup came last
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_with_an_admin_login_the_mock_knows_that_login_only(deployment: Flask) -> None:
    """Basic credentials become the in-process mock's one admin: an unknown key is still a 401 there."""
    code, output, _ = diff(deployment, basic("admin", "bifrost-admin"), legacy_paths=False)
    assert code == 0, output[-3000:]
    assert f"Result: {STEPS} steps compared, 0 with differences" in output


def test_the_permissive_mock_is_compared_with_a_permissive_mock() -> None:
    """``make serve`` then ``mockserver diff --token dev``: the mock says it accepts any key, so the
    in-process mock does too, and the run says so. Without that, "a key the server does not know"
    would differ (the variant any-credential-accepted of test_drift_variants.py)."""
    code, output, _ = diff(create_app(Settings()), "Bearer dev", legacy_paths=False)
    assert code == 0, output[-3000:]
    assert output.count(PERMISSIVE_MOCK_NOTE) == 2  # at the start and in the summary


def test_the_report_names_each_difference_with_its_step_request_and_both_answers(tmp_path: Path) -> None:
    code, output, _ = diff(BY_NAME["version-not-bumped"].build(), legacy_paths=False, report_dir=tmp_path)
    assert code == 1
    first = output[output.index("Differences:") :]
    assert "1. tour, canonical paths, step 16: update the description only: the rest is kept, version 2" in first
    assert '   PUT /api/governance/access-profiles/{a}  {"description": "changed"}' in first
    assert re.search(r"body\.access_profile\.version +mock: 2 +deployment: 1\n", first)
    assert re.search(r'"version": 2 +\| +"version": 1', first)  # the answers side by side
    assert re.search(r"Result: \d+ steps compared, \d+ with differences; exit 1 \(differences\)", output)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "### 1. tour, canonical paths, step 16: update the description only" in report
    assert "| `body.access_profile.version` | `2` | `1` |" in report
    assert "| tour, canonical paths | 4 | read it back |" in report  # every step is listed
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    failed = [case.get("name") for case in junit.iter("testcase") if case.find("failure") is not None]
    assert "16 update the description only: the rest is kept, version 2" in failed
    assert len(list(junit.iter("testcase"))) == STEPS + 1  # the steps, and the run itself


def test_a_spec_that_cannot_be_read_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("openapi: 2.0\n", encoding="utf-8")
    assert run(DiffSettings(base_url="http://127.0.0.1:9", spec=spec), io.StringIO()) == 2
    assert f"mockserver diff: error: {spec}: expected an OpenAPI 3.x document" in capsys.readouterr().err


@pytest.mark.slow
def test_mockserver_diff_against_a_served_mock_finds_no_difference(tmp_path: Path) -> None:
    """The command as CI runs it: the tour on both path families and three generated sequences."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_CONTRACT_")}
    with serve("--api-keys", str(ROOT / "fixtures" / "api-keys.json")) as served:
        result = run_mockserver(
            "diff",
            "--base-url",
            served.url,
            "--report-dir",
            str(tmp_path),
            "--stateful",
            "3",
            "--seed",
            "1",
            env={**env, "MOCKSERVER_CONTRACT_TOKEN": ADMIN_TOKEN},
            timeout=300,
        )
        left = requests.get(
            f"{served.url}{CANONICAL}",
            params={"search": "mockserver-diff-"},
            headers={"Authorization": AUTH},
            timeout=10,
        ).json()
        violations = requests.get(f"{served.url}/__mock/violations", timeout=10).json()["violations"]
    output = result.stdout
    assert result.returncode == 0, output[-6000:] + result.stderr[-3000:]
    assert re.search(r"generated, seed 1 +\d+ +\d+ +0 +0 +0", output)
    assert re.search(r"Result: \d+ steps compared, 0 with differences; exit 0 \(no difference\)", output)
    assert left["total_count"] == 0 and violations == []
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert not list(junit.iter("failure")) and not list(junit.iter("error"))
    assert "exit 0 (no difference)" in (tmp_path / "report.md").read_text(encoding="utf-8")
