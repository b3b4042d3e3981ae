"""make interop: Specmatic's contract tests against a served mock, and a summary of what they found.

Serves the mock on a free port of 127.0.0.1 with the bundled keys (strict authentication), runs
Specmatic (the jar of the npm `specmatic` package, on Java 17) on openapi/access-profiles.yaml with
tools/specmatic.yaml and tools/specmatic-overlay.yaml, and stops the mock however the run ends.
Everything stays on this machine; Specmatic's log and reports go to build/interop/.

Specmatic makes up path ids and ignores `if`/`then` and `not`, so some of its tests are expected to
fail: the mock answers them 404 (no such id), 400 (a rule Specmatic does not model) or 409 (a name
already taken). Exit status:

- 0: Specmatic loaded the spec and executed tests, and every failure is one of those answers;
- 1: some test failed otherwise (a broken answer, a refused credential, an error of the mock);
- 2: no test ran (Specmatic refused the file, or Java, the jar or the mock is missing).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi/access-profiles.yaml"
CONFIG = ROOT / "tools/specmatic.yaml"
OVERLAY = ROOT / "tools/specmatic-overlay.yaml"
JAR = ROOT / "node_modules/specmatic/specmatic.jar"
KEYS = ROOT / "fixtures/api-keys.json"
OUT = ROOT / "build/interop"
ALL_SCOPES = {f"AccessProfiles:{verb}" for verb in ("View", "Create", "Update", "Delete")}
# What the mock may answer a generated request with, and why that is no defect of the mock.
EXPLAINED = {
    404: "an id Specmatic made up",
    400: "a rule Specmatic does not model (`if`/`then`, `not`)",
    409: "a name already taken",
}
_STATUS = re.compile(r"expected status (\d+) but response contained status (\d+)")
_BREADCRUMB = re.compile(r">> ([A-Z][\w.\[\]-]*)")
_LISTENING = re.compile(r"listening on (http://\S+)")


def say(text: str) -> None:
    print(text, flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def credentials() -> dict[str, str]:
    """Specmatic reads a scheme's credentials from the variable named after it (toolchain.md section 9)."""
    keys = json.loads(KEYS.read_text())
    token = next(k["key"] for k in keys["api_keys"] if ALL_SCOPES <= set(k["scopes"]))
    admin = keys["admins"][0]
    login = base64.b64encode(f"{admin['username']}:{admin['password']}".encode()).decode()
    return {"ManagementBearerAuth": token, "BasicAuth": login}


def serve(log: Path) -> tuple[subprocess.Popen[str], str]:
    """`mockserver serve` on a free port, its output in `log`; returns once it says where it listens."""
    command = [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--api-keys", str(KEYS)]
    mock = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert mock.stdout is not None
    sink = log.open("w")
    deadline = threading.Timer(60, mock.kill)
    deadline.start()
    try:
        for line in mock.stdout:
            sink.write(line)
            found = _LISTENING.search(line)
            if found:
                url = found.group(1).rstrip("/")
                break
        else:
            raise SystemExit(f"interop: the mock did not start; see {shown(log)}")
    finally:
        deadline.cancel()
    threading.Thread(target=lambda: [sink.write(line) for line in mock.stdout or ()], daemon=True).start()
    return mock, url


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def specmatic(url: str, out: Path, only: str | None) -> int:
    """Specmatic's test command against `url`, run in `out` (it writes its reports in the working
    directory), its whole output in `out`/specmatic.log. `only` is a Specmatic test filter."""
    command = [
        "java",
        "-jar",
        str(JAR),
        "test",
        str(SPEC),
        f"--config={CONFIG}",
        f"--overlay-file={OVERLAY}",
        f"--junitReportDir={out / 'junit'}",
        f"--testBaseURL={url}",
        *([f"--filter={only}"] if only else []),
    ]
    with (out / "specmatic.log").open("w") as sink:
        return subprocess.run(
            command, cwd=out, env={**os.environ, **credentials()}, stdout=sink, stderr=sink
        ).returncode


def failures(report: Path) -> tuple[int, list[str]]:
    """(tests executed, the failure text of each failed test) from Specmatic's JUnit report. A test is a
    scenario of the API; a refused file shows as one other failed case, which counts as none run."""
    cases = [case for case in ElementTree.parse(report).getroot().iter("testcase")]
    if not all("Scenario:" in case.get("name", "") for case in cases):
        return 0, []
    texts = []
    for case in cases:
        for failed in [*case.findall("failure"), *case.findall("error")]:
            texts.append(f"{case.get('name', '')}\n{failed.get('message', '')}\n{failed.text or ''}")
    return len(cases), texts


def explained(text: str) -> int | None:
    """The status the mock answered when that is the failure's only finding and one of EXPLAINED."""
    found = _STATUS.search(text)
    if found is None or set(_BREADCRUMB.findall(text)) != {"RESPONSE.STATUS"}:
        return None
    status = int(found.group(2))
    return status if status in EXPLAINED else None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help="where the logs and reports go (default build/interop)")
    parser.add_argument("--filter", help="only the tests Specmatic's filter selects, e.g. \"PATH='/api/x'\"")
    args = parser.parse_args(argv)
    out, only = args.out.resolve(), args.filter
    if shutil.which("java") is None:
        say("interop: no java on PATH; install Java 17 (apt-get install -y openjdk-17-jre-headless)")
        return 2
    if not JAR.is_file():
        say(f"interop: {JAR.relative_to(ROOT)} is missing; run `make` (npm ci installs it)")
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "junit", ignore_errors=True)  # so that an old report is never read as this run's
    log = out / "specmatic.log"
    started = time.monotonic()
    mock, url = serve(out / "mock.log")
    try:
        say(f"interop: Specmatic on {SPEC.relative_to(ROOT)} against the mock at {url}")
        code = specmatic(url, out, only)
    finally:
        stop(mock)
    took = time.monotonic() - started
    reports = sorted((out / "junit").glob("*.xml"))
    executed, failed = failures(reports[0]) if reports else (0, [])
    where = f"{shown(log)} and {shown(out / 'junit')}/"
    if executed == 0:
        refusal = [line for line in log.read_text().splitlines() if "Error" in line or "FAILED" in line][:5]
        said = "\n  ".join(refusal)
        say(f"interop: Specmatic executed no test (exit {code}); it said:\n  {said}")
        say(f"  whole output: {where}")
        return 2
    by_status = Counter(explained(text) for text in failed)
    unexplained = [text for text in failed if explained(text) is None]
    say(f"  tests executed: {executed}   passed: {executed - len(failed)}   failed: {len(failed)}")
    for status, count in sorted(by_status.items(), key=lambda item: item[0] or 0):
        if status is not None:
            say(f"    {count:4}  answered {status}: {EXPLAINED[status]} (expected)")
    say(f"    {len(unexplained):4}  failed otherwise")
    for text in unexplained[:5]:
        say("      " + "\n      ".join(line for line in text.splitlines()[:12] if line.strip()))
    say(f"  took {took:.0f} s; Specmatic's output and JUnit report: {where}")
    if unexplained:
        say("interop: FAILED, some answers of the mock are not explained by how Specmatic generates tests")
        return 1
    say("interop: passed (Specmatic loaded the spec and ran its tests; every failure is an expected answer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
