"""The Schemathesis configuration of a run, and what a run reports: terminal summary, Markdown, JUnit."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mockserver import Spec
from mockserver.contract.config import schemathesis_settings, to_toml
from mockserver.contract.report import Outcome, junit, markdown, text, write
from mockserver.contract.results import Results

ROOT = Path(__file__).resolve().parent.parent
UPDATE = "PUT /api/governance/access-profiles/{profile_id}"
LIST = "GET /api/governance/access-profiles"


def test_the_toml_says_what_the_dict_says(spec: Spec) -> None:
    for read_only in (False, True):
        settings = schemathesis_settings(spec, read_only=read_only)
        assert tomllib.loads(to_toml(settings)) == settings


def test_the_settings_keep_the_projects_schemathesis_exceptions(spec: Spec) -> None:
    """The 400s that schemathesis.toml allows for rule-bound operations are allowed in contract runs too."""
    project = tomllib.loads((ROOT / "schemathesis.toml").read_text(encoding="utf-8"))
    ours = schemathesis_settings(spec)
    assert ours["warnings"] == project["warnings"]
    assert ours["operations"][0]["include-operation-id"] == sorted(project["operations"][0]["include-operation-id"])
    assert ours["operations"][0]["checks"] == project["operations"][0]["checks"]


def test_only_methods_that_change_nothing_are_sent_where_they_are_undefined_on_the_collection(spec: Spec) -> None:
    settings = schemathesis_settings(spec)
    collection = settings["operations"][1]
    assert collection["include-operation-id"] == sorted(
        op.operation_id
        for op in spec.operations.values()
        if "{profile_id}" not in op.path or op.path.startswith(("/api/governance/users/", "/api/users/"))
    )
    assert "createAccessProfile" in collection["include-operation-id"]
    assert "detachUserAccessProfile" in collection["include-operation-id"]
    assert "updateAccessProfile" not in collection["include-operation-id"]
    assert collection["phases"]["coverage"]["unexpected-methods"] == ["options", "trace"]
    assert "phases" not in settings
    assert schemathesis_settings(spec, read_only=True)["phases"]["coverage"]["unexpected-methods"] == [
        "options",
        "trace",
    ]
    assert settings["cache"] == {"enabled": False}


@pytest.fixture
def results() -> Results:
    found = Results(family="canonical")
    for _ in range(3):
        found.count_case(UPDATE)
    found.count_case(LIST)
    found.add_failure(
        UPDATE, "update_bumps_version_once", "Custom check failed", "version went from 1 to 1", "curl -X PUT x"
    )
    found.add_failure(UPDATE, "update_bumps_version_once", "Custom check failed", "version went from 2 to 2", "curl y")
    found.family = "deprecated"
    found.count_case("GET /api/access-profiles")
    return found


def outcome(**changes: object) -> Outcome:
    values: dict[str, object] = {
        "target": "http://api.test",
        "prefix": "mockserver-contract-abc-",
        "read_only": False,
        "seconds": 12.5,
        "exit_code": 1,
        "created": 4,
        "deleted": 2,
    }
    return Outcome(**{**values, **changes})  # type: ignore[arg-type]


def test_the_same_failure_of_a_check_counts_as_one_finding(results: Results) -> None:
    [finding] = results.failures
    assert finding.occurrences == 2 and finding.message == "version went from 1 to 1"
    assert results.total_cases == 5
    assert list(results.failures_by_check()) == ["update_bumps_version_once"]


def test_the_summary_has_a_table_failures_by_check_and_a_reproduction(results: Results) -> None:
    summary = text(results, outcome())
    assert "\n  canonical   PUT /api/governance/access-profiles/{profile_id}      3         1\n" in summary
    assert "\n  deprecated  GET /api/access-profiles                              1         0\n" in summary
    assert "\n              total                                                 5         1\n" in summary
    assert "Failures by check:\n  update_bumps_version_once    1  canonical PUT" in summary
    assert "   version went from 1 to 1\n   Reproduce with:\n     curl -X PUT x" in summary
    assert "4 created by this run (named mockserver-contract-abc-...), 2 deleted at the end" in summary
    assert summary.rstrip().endswith("Result: 5 cases, 1 failure; exit 1 (contract failures)")


def test_the_summary_says_why_a_run_could_not_complete() -> None:
    summary = text(Results(), outcome(exit_code=2, problems=("cannot reach the API",), left_behind=("profile 9",)))
    assert "Could not run: cannot reach the API" in summary
    assert "Left behind: profile 9" in summary
    assert "exit 2 (the run could not be completed)" in summary


def test_the_markdown_report_lists_each_failure_with_its_curl(results: Results) -> None:
    report = markdown(results, outcome())
    assert "| canonical | `PUT /api/governance/access-profiles/{profile_id}` | 3 | 1 |" in report
    assert (
        "| `update_bumps_version_once` | 1 | canonical `PUT /api/governance/access-profiles/{profile_id}` |" in report
    )
    assert "### 1. `update_bumps_version_once` on canonical" in report
    assert "```bash\ncurl -X PUT x\n```" in report


def test_junit_has_a_suite_per_family_a_case_per_operation_and_the_check_in_the_message(results: Results) -> None:
    root = junit(results, outcome(refusals=("PUT /x: profile '7' was not created by this run",))).getroot()
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert list(suites) == ["contract (canonical paths)", "contract (deprecated paths)", "contract (run)"]
    canonical = suites["contract (canonical paths)"]
    assert [case.get("name") for case in canonical.iter("testcase")] == [LIST, UPDATE]
    [failure] = canonical.iter("failure")
    assert failure.get("message") == "update_bumps_version_once: Custom check failed"
    assert "curl -X PUT x" in (failure.text or "")
    [error] = suites["contract (run)"].iter("error")
    assert "profile '7' was not created" in (error.text or "")


def test_reports_are_written_and_survive_control_characters_and_lone_surrogates(tmp_path: Path) -> None:
    found = Results(family="canonical")
    found.count_case(UPDATE)
    found.add_failure(UPDATE, "not_a_server_error", "Server error", "body \x00\x1b\ud800 here", None)
    paths = write(tmp_path / "report", found, outcome())
    assert [p.name for p in paths] == ["junit.xml", "report.md"]
    failure = ET.parse(paths[0]).getroot().find(".//failure")
    assert failure is not None and "body \\u0000\\u001b\\ud800 here" in (failure.text or "")
    assert "body \x00\x1b\\ud800 here" in paths[1].read_text(encoding="utf-8")
    assert "\\ud800" in text(found, outcome())  # printable on any UTF-8 terminal
