"""The end of a drift run: a summary for the terminal, ``report.md`` and ``junit.xml``."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from mockserver.contract.report import encodable, write_files, xml_text
from mockserver.drift.compare import side_by_side
from mockserver.drift.walk import COMPARED, NOT_SENT, SKIPPED, StepResult

EXIT_MEANINGS = {0: "no difference", 1: "differences", 2: "the run could not be completed"}
COLUMN = 56  # the width of each answer when they are shown side by side


@dataclass(frozen=True)
class Outcome:
    """How the run went, beyond the steps' results."""

    target: str
    spec: str
    prefix: str
    read_only: bool
    seconds: float
    exit_code: int = 0
    sections: tuple[str, ...] = ()
    created: int = 0
    deleted: int = 0
    left_behind: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # why the run could not be completed
    notes: tuple[str, ...] = ()
    interrupted: bool = False


def with_differences(results: list[StepResult]) -> list[StepResult]:
    return [result for result in results if result.differences]


def section_rows(results: list[StepResult], outcome: Outcome) -> list[tuple[str, int, int, int, int, int]]:
    """(section, steps, compared, skipped, not sent, with differences) for each section, in order."""
    rows = []
    for section in outcome.sections:
        mine = [result for result in results if result.section == section]
        rows.append(
            (
                section,
                len(mine),
                sum(1 for r in mine if r.outcome == COMPARED),
                sum(1 for r in mine if r.outcome == SKIPPED),
                sum(1 for r in mine if r.outcome == NOT_SENT),
                sum(1 for r in mine if r.differences),
            )
        )
    return rows


def text(results: list[StepResult], outcome: Outcome) -> str:
    """The summary printed at the end of a run."""
    lines = ["", "=" * 30 + " mockserver diff " + "=" * 30, "", *_facts(outcome), "", *_table(results, outcome)]
    found = with_differences(results)
    if found:
        lines += ["", "Differences:"]
        for number, result in enumerate(found, 1):
            lines += ["", *_difference_lines(number, result, outcome.prefix)]
    lines += ["", *_closing(results, outcome)]
    return encodable("\n".join(lines) + "\n")


def markdown(results: list[StepResult], outcome: Outcome) -> str:
    """The report written to ``--report-dir``: the facts, the differences, and every step."""
    lines = ["# Drift report", "", *(f"- {fact.strip()}" for fact in _facts(outcome)), ""]
    lines += ["| section | steps | compared | skipped | not sent | differences |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {s} | {n} | {c} | {k} | {u} | {d} |" for s, n, c, k, u, d in section_rows(results, outcome)]
    found = with_differences(results)
    if found:
        lines += ["", "## Differences", ""]
        for number, result in enumerate(found, 1):
            lines += [f"### {number}. {result.section}, step {result.number}: {result.step.title}", ""]
            lines += ["```", result.request, "```", "", "| where | mock | deployment |", "|---|---|---|"]
            lines += [f"| `{d.where}` | `{_cell(d.mock)}` | `{_cell(d.deployment)}` |" for d in result.differences]
            messages = _message_lines(result, outcome.prefix)
            lines += ["", *(messages + [""] if messages else []), "```text", *_columns(result), "```", ""]
    lines += [
        "",
        "## Every step",
        "",
        "| section | step | what is compared | request | result |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.section} | {result.number} | {_cell(result.step.title)} | `{_cell(result.request, 120)}` "
            f"| {_verdict(result)} |"
        )
    lines += ["", "## Result", "", *(f"- {line}" for line in _closing(results, outcome))]
    return encodable("\n".join(lines) + "\n")


def junit(results: list[StepResult], outcome: Outcome) -> ET.ElementTree:
    """JUnit XML: a suite per section, a test case per step (failed when the answers differ)."""
    root = ET.Element("testsuites", name="mockserver diff", time=f"{outcome.seconds:.3f}")
    for section, steps, _, skipped, not_sent, differing in section_rows(results, outcome):
        suite = ET.SubElement(root, "testsuite", name=f"diff ({section})", tests=str(steps))
        suite.set("failures", str(differing))
        suite.set("skipped", str(skipped + not_sent))
        for result in (r for r in results if r.section == section):
            case = ET.SubElement(
                suite, "testcase", classname=f"diff.{section}", name=f"{result.number} {result.step.title}"
            )
            ET.SubElement(case, "system-out").text = xml_text(result.request)
            if result.differences:
                failure = ET.SubElement(case, "failure", message=f"{len(result.differences)} differences")
                failure.text = xml_text("\n".join(_difference_lines(0, result, outcome.prefix)[1:]))
            elif result.outcome != COMPARED:
                ET.SubElement(case, "skipped", message=xml_text(f"{result.outcome}: {result.reason}"))
    run = ET.SubElement(root, "testsuite", name="diff (run)", tests="1")
    completion = ET.SubElement(run, "testcase", classname="diff.run", name="completes and cleans up")
    trouble = [*outcome.problems, *(["interrupted"] if outcome.interrupted else []), *outcome.left_behind]
    if trouble:
        ET.SubElement(completion, "error", message="the run did not complete cleanly").text = xml_text(
            "\n".join(trouble)
        )
    ET.indent(root)
    return ET.ElementTree(root)


def write(directory: Path, results: list[StepResult], outcome: Outcome) -> list[Path]:
    """Write ``junit.xml`` and ``report.md`` into ``directory``; returns their paths."""
    return write_files(directory, markdown(results, outcome), junit(results, outcome))


def _facts(outcome: Outcome) -> list[str]:
    mode = "read-only" if outcome.read_only else "changes only profiles it creates"
    facts = [
        f"  target:     {outcome.target} ({mode})",
        f"  against:    a fresh in-process mock of {outcome.spec}",
        f"  time:       {outcome.seconds:.1f} s",
    ]
    if not outcome.read_only:
        facts.append(
            f"  profiles:   {outcome.created} created on the deployment by this run (named {outcome.prefix}...), "
            f"{outcome.deleted} deleted at the end"
        )
    facts += [f"  note:       {note}" for note in outcome.notes]
    return facts


def _table(results: list[StepResult], outcome: Outcome) -> list[str]:
    header = ("section", "steps", "compared", "skipped", "not sent", "differences")
    rows = [tuple(str(cell) for cell in row) for row in section_rows(results, outcome)]
    totals = [sum(int(row[i]) for row in rows) for i in range(1, 6)]
    rows.append(("total", *(str(total) for total in totals)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(6)]
    return [
        "  " + "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]


def _difference_lines(number: int, result: StepResult, prefix: str) -> list[str]:
    lines = [f"{number}. {result.section}, step {result.number}: {result.step.title}", f"   {result.request}"]
    width = max(len(d.where) for d in result.differences)
    lines += [f"   {d.where:<{width}}  mock: {d.mock}   deployment: {d.deployment}" for d in result.differences]
    lines += [f"   {line}" for line in _message_lines(result, prefix)]
    lines += ["", *(f"   {line}" for line in _columns(result))]
    return lines


def _columns(result: StepResult) -> list[str]:
    header = f"{'mock':<{COLUMN}}   deployment"
    return [header, "-" * len(header), *side_by_side(result.mock, result.deployment, width=COLUMN)]


def _message_lines(result: StepResult, prefix: str) -> list[str]:
    mock, deployment = (None if m is None else m.replace(prefix, "<run>-") for m in result.messages)
    if mock is None and deployment is None:
        return []
    return [f"messages (not compared): mock {mock!r}; deployment {deployment!r}"]


def _verdict(result: StepResult) -> str:
    if result.differences:
        return f"**{len(result.differences)} differences**"
    if result.outcome == COMPARED:
        return "same"
    return f"{result.outcome}: {result.reason}"


def _cell(text: str, width: int = 80) -> str:
    text = text.replace("|", "\\|").replace("`", "'")
    return text if len(text) <= width else text[: width - 3] + "..."


def _closing(results: list[StepResult], outcome: Outcome) -> list[str]:
    lines = []
    if outcome.interrupted:
        lines.append("The run was interrupted.")
    lines += [f"Could not complete: {problem}" for problem in outcome.problems]
    lines += [
        f"Not sent ({r.section}, step {r.number}): {textwrap.shorten(r.reason, 300)}"
        for r in results
        if r.outcome == NOT_SENT
    ]
    lines += [f"Left behind: {left}" for left in outcome.left_behind]
    compared = sum(1 for r in results if r.outcome == COMPARED)
    differing = len(with_differences(results))
    lines.append(
        f"Result: {compared} steps compared, {differing} with differences; "
        f"exit {outcome.exit_code} ({EXIT_MEANINGS.get(outcome.exit_code, 'unknown')})"
    )
    return lines
