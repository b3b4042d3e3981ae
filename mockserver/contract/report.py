"""The end of a contract run: a summary for the terminal, a Markdown report and JUnit XML."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from mockserver.contract.results import Finding, Results

EXIT_MEANINGS = {0: "no contract failure", 1: "contract failures", 2: "the run could not be completed"}


@dataclass(frozen=True)
class Outcome:
    """How the run went, beyond the results of the checks."""

    target: str
    prefix: str
    read_only: bool
    seconds: float
    exit_code: int
    created: int = 0
    deleted: int = 0
    left_behind: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())  # why the run could not be completed
    # Generated requests left out because the guard would refuse them: (reason, how often).
    not_sent: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()  # what the run chose to leave out, and why (said once at the start)


def operation_rows(results: Results) -> list[tuple[str, str, int, int]]:
    """(family, operation, cases, failures) for every operation that was sent cases."""
    return [
        (family, operation, cases, results.failures_of(family, operation))
        for (family, operation), cases in sorted(results.cases.items())
    ]


def text(results: Results, outcome: Outcome) -> str:
    """The summary printed at the end of a run."""
    lines = ["", "=" * 30 + " mockserver contract " + "=" * 30, ""]
    lines += _facts(outcome)
    lines += ["", _table(results)]
    by_check = results.failures_by_check()
    if by_check:
        lines += ["", "Failures by check:"]
        width = max(len(check) for check in by_check)
        for check, findings in by_check.items():
            where = ", ".join(f"{f.family} {f.operation}" for f in findings)
            lines.append(f"  {check:<{width}}  {len(findings):>3}  {where}")
        for number, finding in enumerate(results.failures, 1):
            lines += ["", *_finding_lines(number, finding)]
    lines += ["", *_closing(results, outcome)]
    return encodable("\n".join(lines) + "\n")


def markdown(results: Results, outcome: Outcome) -> str:
    """The human-readable report written to ``--report-dir``."""
    lines = ["# Contract run", "", *(f"- {fact.strip()}" for fact in _facts(outcome)), ""]
    lines += ["| family | operation | cases | failures |", "|---|---|---:|---:|"]
    lines += [
        f"| {family} | `{op}` | {cases} | {failures} |" for family, op, cases, failures in operation_rows(results)
    ]
    lines += [f"| | **total** | {results.total_cases} | {len(results.failures)} |", ""]
    by_check = results.failures_by_check()
    if by_check:
        lines += ["## Failures by check", "", "| check | failures | operations |", "|---|---:|---|"]
        for check, findings in by_check.items():
            where = "<br>".join(f"{f.family} `{f.operation}`" for f in findings)
            lines.append(f"| `{check}` | {len(findings)} | {where} |")
        lines.append("")
        for number, finding in enumerate(results.failures, 1):
            lines += [
                f"### {number}. `{finding.check}` on {finding.family} `{finding.operation}`",
                "",
                f"{finding.title} ({_cases(finding.occurrences)})",
                "",
                "```",
                finding.message.strip(),
                "```",
                "",
            ]
            if finding.curl:
                lines += ["Reproduce with:", "", "```bash", finding.curl.strip(), "```", ""]
    lines += ["## Result", "", *(f"- {line.strip()}" for line in _closing(results, outcome))]
    return encodable("\n".join(lines) + "\n")


def junit(results: Results, outcome: Outcome) -> ET.ElementTree:
    """JUnit XML: one suite per path family, one test case per operation, failures per check."""
    root = ET.Element("testsuites", name="mockserver contract", time=f"{outcome.seconds:.3f}")
    families = sorted({family for family, _ in results.cases} | {f.family for f in results.failures})
    for family in families:
        rows = [row for row in operation_rows(results) if row[0] == family]
        suite = ET.SubElement(root, "testsuite", name=f"contract ({family} paths)", tests=str(len(rows)))
        suite.set("failures", str(sum(1 for row in rows if row[3])))
        for _, operation, cases, _ in rows:
            case = ET.SubElement(suite, "testcase", classname=f"contract.{family}", name=operation)
            ET.SubElement(case, "system-out").text = f"{cases} cases sent"
            for finding in results.failures:
                if (finding.family, finding.operation) == (family, operation):
                    failure = ET.SubElement(case, "failure", message=f"{finding.check}: {finding.title}")
                    failure.text = xml_text("\n".join(_finding_lines(0, finding)[1:]))
    run = ET.SubElement(root, "testsuite", name="contract (run)", tests="2")
    safety = ET.SubElement(run, "testcase", classname="contract.run", name="changes only its own profiles")
    if outcome.not_sent:
        ET.SubElement(safety, "system-out").text = xml_text("\n".join(not_sent_lines(outcome)))
    if outcome.refusals:
        ET.SubElement(safety, "error", message="requests refused by the guard").text = xml_text(
            "\n".join(outcome.refusals)
        )
    completion = ET.SubElement(run, "testcase", classname="contract.run", name="completes and cleans up")
    trouble = [*outcome.problems, *results.errors, *outcome.left_behind]
    if trouble:
        ET.SubElement(completion, "error", message="the run did not complete cleanly").text = xml_text(
            "\n".join(trouble)
        )
    ET.indent(root)
    return ET.ElementTree(root)


def write(directory: Path, results: Results, outcome: Outcome) -> list[Path]:
    """Write ``junit.xml`` and ``report.md`` into ``directory``; returns their paths."""
    return write_files(directory, markdown(results, outcome), junit(results, outcome))


def write_files(directory: Path, text: str, tree: ET.ElementTree) -> list[Path]:
    """Write ``text`` as ``report.md`` and ``tree`` as ``junit.xml`` into ``directory`` (made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    report, xml = directory / "report.md", directory / "junit.xml"
    report.write_text(text, encoding="utf-8")
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return [xml, report]


def _facts(outcome: Outcome) -> list[str]:
    mode = "read-only" if outcome.read_only else "changes only profiles it creates"
    facts = [
        f"  target:     {outcome.target} ({mode})",
        f"  time:       {outcome.seconds:.1f} s",
    ]
    if not outcome.read_only:
        facts.append(
            f"  profiles:   {outcome.created} created by this run (named {outcome.prefix}...), "
            f"{outcome.deleted} deleted at the end"
        )
    if outcome.not_sent:
        count = sum(times for _, times in outcome.not_sent)
        facts.append(
            f"  not sent:   {count} generated request{'s' if count != 1 else ''} that would change data "
            "the run does not own (listed below; not an error)"
        )
    facts += [f"  note:       {note}" for note in outcome.notes]
    return facts


def not_sent_lines(outcome: Outcome) -> list[str]:
    """One line per request the guard kept back, with its reason and how often it was generated."""
    return [
        f"Not sent: would change data the run does not own: {reason}" + (f" ({times} times)" if times > 1 else "")
        for reason, times in outcome.not_sent
    ]


def _table(results: Results) -> str:
    rows = [(family, op, str(cases), str(failures)) for family, op, cases, failures in operation_rows(results)]
    rows.append(("", "total", str(results.total_cases), str(len(results.failures))))
    header = ("family", "operation", "cases", "failures")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}"

    return "\n".join([line(header), *(line(row) for row in rows)])


def _finding_lines(number: int, finding: Finding) -> list[str]:
    lines = [
        f"{number}. {finding.check} on {finding.family} {finding.operation} ({_cases(finding.occurrences)})",
        f"   {finding.title}",
    ]
    lines += [textwrap.indent(finding.message.strip(), "   ")]
    if finding.curl:
        lines += ["   Reproduce with:", textwrap.indent(finding.curl.strip(), "     ")]
    return lines


def _closing(results: Results, outcome: Outcome) -> list[str]:
    lines = []
    if results.interrupted:
        lines.append("The run was interrupted.")
    for problem in outcome.problems:
        lines.append(f"Could not run: {problem}")
    for error in results.errors:
        lines.append(f"Error: {error}")
    lines += not_sent_lines(outcome)
    for refusal in outcome.refusals:
        lines.append(f"Refused by the guard (a defect of mockserver contract, please report it): {refusal}")
    for left in outcome.left_behind:
        lines.append(f"Left behind: {left}")
    failures = len(results.failures)
    lines.append(
        f"Result: {results.total_cases} cases, {failures} failure{'s' if failures != 1 else ''}; "
        f"exit {outcome.exit_code} ({EXIT_MEANINGS.get(outcome.exit_code, 'unknown')})"
    )
    return lines


def _cases(count: int) -> str:
    return f"{count} case{'s' if count != 1 else ''}"


def encodable(text: str) -> str:
    """``text`` with lone surrogates (generated bodies contain them) written as ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry (generated bodies contain them) escaped."""
    return "".join(ch if xml_allowed(ord(ch)) else f"\\u{ord(ch):04x}" for ch in text)


def xml_allowed(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000
