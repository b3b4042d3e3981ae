"""What a contract run found: cases sent per operation, failures per check, errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Finding:
    """One kind of failure: a check that failed on an operation, with one case that shows it."""

    family: str
    operation: str
    check: str
    title: str
    message: str
    curl: str | None
    occurrences: int = 1


@dataclass
class Results:
    """Everything the report needs, filled while the run goes on."""

    # The path family being tested, set by the runner before each Schemathesis pass.
    family: str = ""
    cases: Counter[tuple[str, str]] = field(default_factory=Counter)
    findings: dict[tuple[str, str, str, str], Finding] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False

    def count_case(self, operation: str) -> None:
        self.cases[(self.family, operation)] += 1

    def add_failure(self, operation: str, check: str, title: str, message: str, curl: str | None) -> None:
        """Record a failure; the same check failing the same way on one operation counts once more."""
        key = (self.family, operation, check, title)
        if key in self.findings:
            self.findings[key].occurrences += 1
        else:
            self.findings[key] = Finding(self.family, operation, check, title, message, curl)

    def add_error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    @property
    def failures(self) -> list[Finding]:
        return list(self.findings.values())

    @property
    def total_cases(self) -> int:
        return sum(self.cases.values())

    def failures_by_check(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {}
        for finding in self.findings.values():
            grouped.setdefault(finding.check, []).append(finding)
        return dict(sorted(grouped.items()))

    def failures_of(self, family: str, operation: str) -> int:
        return sum(1 for f in self.findings.values() if (f.family, f.operation) == (family, operation))
