"""The wheel users install: built from this checkout, installed into a fresh venv, serving from elsewhere.

The wheel is built as `make dist` builds it (``python -m build --no-isolation``, with the locked
hatchling, so no network is needed). The fresh venv gets the wheel alone (``--no-deps``); its
dependencies come from this environment's site-packages, named in a ``.pth`` file, which adds that
folder to the path without running its own ``.pth`` files: the editable install of this checkout
stays out, so ``mockserver`` can only be the wheel's. The server runs from an empty folder, so the spec
and fixtures it serves are the ones the wheel carries.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest

import mockserver

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (http://\S+)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("mockserver-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel, its dependencies seen from this environment."""
    where = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    python = where / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-warn-script-location", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return where


def test_the_wheel_carries_the_spec_the_fixtures_and_the_version(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for bundled in ("openapi/access-profiles.yaml", "openapi/validated.txt", "fixtures/default.json"):
        assert f"mockserver/data/{bundled}" in names, names
    assert wheel.name == f"mockserver-{mockserver.__version__}-py3-none-any.whl"
    assert "mockserver/server/inspector_files/index.html" in names  # the inspector page's own files


def test_the_installed_wheel_serves_from_another_folder(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCKSERVER_", "PYTHON"))}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mockserver; print(mockserver.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"mockserver came from {where}, not from the wheel"
    version = subprocess.run(
        [str(venv / "bin" / "mockserver"), "--version"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == f"mockserver {mockserver.__version__}", version

    process = subprocess.Popen(
        [str(venv / "bin" / "mockserver"), "serve", "--port", "0"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    timer = threading.Timer(30, process.kill)
    timer.start()
    lines: list[str] = []
    try:
        url = None
        for line in process.stdout:
            lines.append(line)
            found = LISTENING.search(line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "".join(lines)
        request = urllib.request.Request(
            url + "/api/governance/access-profiles/1", headers={"Authorization": "Bearer dev"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            profile = json.load(answer)["access_profile"]
        assert profile["id"] == 1 and profile["name"] == "Platform engineering"
        with urllib.request.urlopen(url + "/openapi.json", timeout=10) as answer:
            spec = json.load(answer)
        assert spec["openapi"].startswith("3.1") and "/api/governance/access-profiles" in spec["paths"]
    finally:
        timer.cancel()
        process.terminate()
        lines.append(process.stdout.read())
        process.wait(timeout=15)
        process.stdout.close()
    # The banner names the fixtures it loaded: the wheel's own, inside the venv.
    fixtures = next((line for line in "".join(lines).splitlines() if line.strip().startswith("Fixtures")), "")
    assert str(venv) in fixtures and "default.json" in fixtures, "".join(lines)
