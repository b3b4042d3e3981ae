"""Typed frontend clients, as docs/frontend.md shows them: openapi-typescript generates the types from a
served mock's /openapi.json, tsc --strict compiles an openapi-fetch client (tests/typed_client/),
and node runs it against that mock.

Everything is written to a temporary folder; the Node tools are the ones package-lock.json pins
(installed by `make test`). tsc runs once, on the client, the docs' example and a file of
misuses: the first two must compile clean, and every marked misuse must be refused, which proves
the generated types are real.
It is one test, so that a parallel run (pytest-xdist) serves, generates and compiles only once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from serving import ROOT, serve

pytestmark = pytest.mark.slow

NODE_BIN = ROOT / "node_modules" / ".bin"
SOURCES = ROOT / "tests" / "typed_client"
CANONICAL = "/api/governance/access-profiles"
# What a frontend developer sends to `make serve` (permissive authentication): any bearer token.
TOKEN = "dev"
# tsc --pretty false: "misuse.ts(13,13): error TS2322: ..." (continuation lines are indented).
TSC_ERROR = re.compile(r"^(?P<file>[^\s(]+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+): ")
EXPECT = re.compile(r"// expect (TS\d+)")
README_URL = "http://127.0.0.1:8080"


def _readme_example(url: str) -> str:
    """The docs' openapi-fetch example (docs/frontend.md), aimed at ``url`` (and importing the types as
    NodeNext wants)."""
    page = (ROOT / "docs" / "frontend.md").read_text(encoding="utf-8")
    example = re.search(r"```ts\n(.*?)```", page.split("## Typed clients", 1)[1], re.S)
    assert example is not None, "the typed-client example of docs/frontend.md is gone"
    code = example.group(1)
    assert README_URL in code and 'from "./bifrost";' in code, code
    return code.replace(README_URL, url).replace('from "./bifrost";', 'from "./bifrost.js";')


def _run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _prepare(work: Path) -> None:
    """The committed sources in ``work``, as an ES module package that finds the pinned node_modules."""
    absent = [tool for tool in ("openapi-typescript", "tsc") if not (NODE_BIN / tool).exists()]
    assert not absent, f"{absent} not in node_modules: `make test` installs them (npm ci)"
    assert shutil.which("node"), "node is not on PATH"
    for source in [*SOURCES.glob("*.ts"), SOURCES / "tsconfig.json"]:
        shutil.copy(source, work / source.name)
    (work / "package.json").write_text('{"private": true, "type": "module"}\n', encoding="utf-8")
    (work / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)


def _check_compiled(work: Path, tsc: subprocess.CompletedProcess[str]) -> None:
    """client.ts compiles clean under --strict, and each misuse fails where it is marked, with that code."""
    found: set[tuple[str, int, str]] = set()
    for line in tsc.stdout.splitlines():
        if "error TS" in line:
            error = TSC_ERROR.match(line)
            assert error, f"an error tsc did not tie to a line: {line}"
            found.add((error["file"], int(error["line"]), error["code"]))
    expected = {
        (source.name, number, marker[1])
        for source in SOURCES.glob("*.ts")
        for number, text in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1)
        if (marker := EXPECT.search(text))
    }
    assert len(expected) >= 4 and {file for file, _, _ in expected} == {"misuse.ts"}
    assert found == expected, tsc.stdout + tsc.stderr
    assert tsc.returncode != 0
    assert {"client.js", "readme.js"} <= {path.name for path in (work / "out").iterdir()}  # emitted all the same


def test_a_typed_client_generated_from_the_served_spec(tmp_path: Path) -> None:
    _prepare(tmp_path)
    run_id = uuid.uuid4().hex[:8]
    with serve("--no-watch") as served:
        url = f"{served.url}/openapi.json"
        generated = _run([NODE_BIN / "openapi-typescript", url, "-o", "bifrost.d.ts"], tmp_path)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        types = (tmp_path / "bifrost.d.ts").read_text(encoding="utf-8")
        assert f'"{CANONICAL}/{{profile_id}}": {{' in types and "BifrostError: {" in types
        (tmp_path / "readme.ts").write_text(_readme_example(served.url), encoding="utf-8")

        # One tsc run type-checks every file and emits the JavaScript to out/.
        _check_compiled(tmp_path, _run([NODE_BIN / "tsc", "-p", ".", "--strict", "--pretty", "false"], tmp_path))

        env = {**os.environ, "BIFROST_URL": served.url, "BIFROST_TOKEN": TOKEN, "RUN_ID": run_id}
        ran = _run(["node", "out/client.js"], tmp_path, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        # The docs' PUT on profile 1: it prints the new version, and the rate limit is gone.
        profile_1 = f"{served.url}{CANONICAL}/1"
        before = requests.get(profile_1, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        readme = _run(["node", "out/readme.js"], tmp_path)
        after = requests.get(profile_1, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        violations = requests.get(f"{served.url}/__mock/violations", timeout=10).json()["violations"]
    result: dict[str, Any] = json.loads(ran.stdout)
    name = f"Typed client {run_id}"

    created = result["created"]
    profile_id = created["id"]
    assert created["status"] == 201
    assert created["location"] == f"{CANONICAL}/{profile_id}"
    assert (created["name"], created["version"], created["tags"]) == (name, 1, ["typed"])
    assert created["rate_limit"]["request_max_limit"] == 100
    assert created["rate_limit"]["request_reset_duration"] == "1h"

    # The typed PUT {name, rate_limit: null}: version + 1, the rate limit gone, the rest kept.
    renamed = f"{name} (renamed)"
    expected = {"id": profile_id, "name": renamed, "version": 2, "tags": ["typed"], "rate_limit": "absent"}
    assert result["updated"] == {"status": 200, **expected}
    assert result["fetched"] == {"status": 200, "user_count": 0, **expected}
    assert result["listed"] == {"status": 200, "total_count": 1, "limit": 5, "names": [renamed]}

    # The errors, read through the client's typed `error`: the BifrostError envelope.
    missing, taken = result["missing"], result["taken"]
    assert (missing["status"], missing["type"], missing["param"]) == (404, "not_found", "profile_id")
    assert (taken["status"], taken["type"], taken["param"]) == (409, "conflict", "name")
    assert renamed in taken["message"]

    assert (readme.returncode, readme.stderr) == (0, "")
    assert readme.stdout == f"{before['access_profile']['version'] + 1}\n"
    assert after["access_profile"]["name"] == "Platform engineering (EU)"
    assert "rate_limit" in before["access_profile"] and "rate_limit" not in after["access_profile"]

    # None of the mock's answers to the client broke the contract.
    assert violations == []
