"""Start ``mockserver serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (http://\S+)")


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.process = process
        self.url = url
        self.lines = lines  # everything printed after the URL line, collected while it runs

    def serving_pid(self) -> int:
        """The process that runs the app (and holds the state file): granian's worker, forked from this
        process (the default on Linux), or on waitress the process itself."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        found = children.read_text().split() if children.exists() else []
        return int(found[0]) if len(found) == 1 else self.process.pid

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def _drain(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def run_mockserver(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``mockserver ARGS`` run to its end, its output captured; ``env`` is the whole environment (None: ours)."""
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def serve(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> AbstractContextManager[Served]:
    """``mockserver serve --port 0 ARGS``; yields once it prints its URL, kills it after unless stopped."""
    return serve_command([sys.executable, "-m", "mockserver", "serve", "--port", "0", *args], env=env, timeout=timeout)


@contextmanager
def serve_command(command: list[str], env: dict[str, str] | None = None, timeout: float = 20) -> Iterator[Served]:
    """Run ``command``, a server that prints ``listening on URL``; yields once it has, kills it after."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            found = _LISTENING.search(line)
            if found:
                break
        else:
            process.wait()
            process.stdout.close()
            raise AssertionError("mockserver exited before listening:\n" + "".join(lines))
    finally:
        timer.cancel()
    drain = threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True)
    drain.start()
    served = Served(process, found.group(1), lines)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        drain.join(timeout=5)
        process.stdout.close()
