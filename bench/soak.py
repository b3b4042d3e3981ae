"""`make soak`: `mockserver serve --state FILE` as a real process under a mixed load, for minutes.

The load (issue 22) is what a team's shared mock or a long end-to-end suite sends:

- 12 keep-alive clients (threads, one `http.client` connection each), only to 127.0.0.1;
- about 60% reads (one profile, a list page, a search, a profile's versions, an audit page), 25%
  partial PUTs, 10% creates and deletes, 5% activate, deactivate or clone;
- a fifth of the requests in isolated sessions that come and go (each client deletes its session now
  and then and starts another);
- data that stays about the same size (see ``OWN_MOST``), so that what the run measures is the mock.

It prints throughput per window, the server's CPU time per request (steady while the mock is, whatever
else takes the machine's cores), p50 and p99 by operation and the server's RSS (its process and its
children), then stops the server with `kill -9`, starts it again on the same file and checks that every
acknowledged write is there. It fails (exit 1) when the throughput of the last minute is below 85% of
the first minute's (for runs shorter than three minutes: the last third against the first), on any 5xx
or connection error, or when an acknowledged write is missing after the restart.

`--memory` runs the memory check instead: 8 sessions, each reading `--pages` pages of `?limit=100` after
100 creates; it fails when the server's RSS passes `--rss-limit-mb`.

Bounded: `--seconds` (default 180) and `--max-requests`; it talks to the server it started and nothing else.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIST = "/api/governance/access-profiles"
AUTH = "Bearer soak"
HEADER = "X-Mockserver-Session"
SETUP_PROFILES = 40  # besides the fixtures' 10: a list page and the PUTs have something to work on

# Operation -> share of requests (per cent). Creates and deletes go in pairs, as clones and deletes do.
MIX = {
    "get": 20,
    "list": 12,
    "search": 8,
    "versions": 10,
    "audit": 10,
    "put": 25,
    "create": 5,
    "delete": 5,
    "activate": 2,
    "deactivate": 2,
    "clone": 1,
}
SESSION_SHARE = 0.2
SESSION_LIFE = 300  # requests a client sends in one session (about) before it deletes it and starts another
# The data stays about the same size, so that a slowdown is the mock's and not a longer answer's: each
# client keeps at most this many profiles of its own per session (a create beyond it deletes one
# instead), and reads the versions of its own profiles, whose history stays short. A profile's
# versions list has no pages: reading one that every PUT lands on costs more each minute, by design.
OWN_MOST = 10


@dataclass
class Tally:
    """What all clients did, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    done: int = 0
    errors: list[str] = field(default_factory=list)  # 5xx and connection errors
    unexpected: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # other statuses, by op
    versions: dict[int, int] = field(default_factory=dict)  # default state: profile id -> highest version acknowledged
    created: set[int] = field(default_factory=set)  # default state: created and acknowledged, not deleted
    deleted: set[int] = field(default_factory=set)

    def add(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies[op].append(seconds)
            self.done += 1


class Client:
    """One keep-alive connection and the ids this client made, per session."""

    def __init__(self, number: int, host: str, port: int, tally: Tally, shared: list[int], seed: int) -> None:
        self.number = number
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.tally = tally
        self.shared = shared  # default state's profiles every client may update
        self.random = random.Random(seed + number)
        self.session_number = 0
        self.session_used = 0
        self.owned: dict[str, list[int]] = defaultdict(list)  # session ("" default) -> ids this client created
        self.made = 0

    @property
    def session(self) -> str:
        return f"soak-{self.number}-{self.session_number}"

    def request(self, method: str, path: str, body: Any = None, session: str = "") -> tuple[int, Any]:
        headers = {"Authorization": AUTH}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if session:
            headers[HEADER] = session
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
            except (OSError, http.client.HTTPException):
                self.connection.close()  # a keep-alive connection the server closed: reopen once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def step(self) -> None:
        op = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        session = ""
        if self.random.random() < SESSION_SHARE:
            self.session_used += 1
            if self.session_used > SESSION_LIFE:
                self.request("DELETE", f"/__mock/sessions/{self.session}")
                self.owned.pop(self.session, None)
                self.session_number += 1
                self.session_used = 0
            session = self.session
        op, method, path, body, expected = self._plan(op, session)
        started = time.perf_counter()
        try:
            status, answer = self.request(method, path, body, session)
        except (OSError, http.client.HTTPException) as exc:
            with self.tally.lock:
                self.tally.errors.append(f"{op} {path}: {exc!r}")
            return
        self.tally.add(op, time.perf_counter() - started)
        if status >= 500:
            with self.tally.lock:
                self.tally.errors.append(f"{op} {method} {path} -> {status}: {answer}")
        elif status not in expected:
            with self.tally.lock:
                self.tally.unexpected[f"{op} {status}"] += 1
        else:
            self._acknowledged(op, session, path, status, answer)

    def _plan(self, op: str, session: str) -> tuple[str, str, str, Any, tuple[int, ...]]:
        """(operation, method, path, body, the statuses that acknowledge it)."""
        mine = self.owned[session]
        pool = (self.shared if not session else list(range(1, 11))) + mine
        target = self.random.choice(pool)
        if op in ("create", "clone") and len(mine) >= OWN_MOST:
            op = "delete"
        if op == "get":
            return op, "GET", f"{LIST}/{target}", None, (200,)
        if op == "list":
            return op, "GET", f"{LIST}?limit=25&offset={self.random.randrange(0, 40)}", None, (200,)
        if op == "search":
            return op, "GET", f"{LIST}?search=soak&limit=25", None, (200,)
        if op == "versions":
            return op, "GET", f"{LIST}/{self.random.choice(mine) if mine else target}/versions", None, (200,)
        if op == "audit":
            where = self.random.choice(["", f"/{target}"])
            return op, "GET", f"{LIST}{where}/audit-logs?limit=25", None, (200,)
        if op == "put":
            self.made += 1
            return op, "PUT", f"{LIST}/{target}", {"description": f"soak {self.number} edit {self.made}"}, (200,)
        if op in ("activate", "deactivate"):
            return op, "PUT", f"{LIST}/{target}/{op}", None, (200,)
        if op == "delete" and mine:
            victim = mine.pop(self.random.randrange(len(mine)))
            return op, "DELETE", f"{LIST}/{victim}", None, (200, 204)
        self.made += 1  # a create, a clone, or a delete with nothing of its own to delete yet: a create first
        name = f"soak {self.number}-{self.made}"
        if op == "clone":
            return op, "POST", f"{LIST}/{target}/clone", {"name": name}, (201,)
        return "create", "POST", LIST, {"name": name, "description": "made by the soak", "tags": ["soak"]}, (201,)

    def _acknowledged(self, op: str, session: str, path: str, status: int, answer: Any) -> None:
        profile = answer.get("access_profile") if isinstance(answer, dict) else None
        if op in ("create", "clone"):
            self.owned[session].append(profile["id"])  # type: ignore[index]
        if session:
            return
        with self.tally.lock:
            if op == "delete":
                victim = int(path.rsplit("/", 1)[1])
                self.tally.created.discard(victim)
                self.tally.deleted.add(victim)
                self.tally.versions.pop(victim, None)
            elif profile is not None:
                if op in ("create", "clone"):
                    self.tally.created.add(profile["id"])
                known = self.tally.versions.get(profile["id"], 0)
                self.tally.versions[profile["id"]] = max(known, profile["version"])


def _tree(pid: int) -> list[int]:
    """The process and its descendants (granian's worker)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants, in MB."""
    total = 0
    for current in _tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process and its descendants have used so far."""
    ticks = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def served(state: Path, extra: list[str]) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """`mockserver serve --state` on a free port of 127.0.0.1; killed with -9 when done."""
    command = [sys.executable, "-m", "mockserver", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--state", str(state), "--no-watch", "--quiet", *extra]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        found = None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise SystemExit("the mock exited before it listened")
            found = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if found is None:
            raise SystemExit("the mock did not listen within 60 s")
        threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()  # drain
        host, port = found.group(1), int(found.group(2))
        yield process, host, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def soak(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="mockserver-soak-") as folder:
        return _soak(args, args.state or Path(folder, "state.sqlite"))


def _soak(args: argparse.Namespace, state: Path) -> int:
    extra = ["--server", args.server] if args.server else []
    tally = Tally()
    # (seconds since start, requests in the window, RSS MB, the server's CPU ms per request in the window)
    windows: list[tuple[float, int, float, float]] = []
    with served(state, extra) as (process, host, port):
        setup = Client(-1, host, port, tally, [], args.seed)
        shared = list(range(1, 11))
        for n in range(SETUP_PROFILES):
            status, answer = setup.request("POST", LIST, {"name": f"soak setup {n}", "tags": ["soak"]})
            assert status == 201, answer
            shared.append(answer["access_profile"]["id"])
        clients = [Client(n, host, port, tally, shared, args.seed) for n in range(args.clients)]
        stop = threading.Event()
        started = time.monotonic()

        def run(client: Client) -> None:
            while not stop.is_set():
                try:
                    client.step()
                except Exception as exc:  # a failed request is counted; the client goes on
                    with tally.lock:
                        tally.errors.append(f"client {client.number}: {exc!r}")

        threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
        for thread in threads:
            thread.start()
        print(f"soak: {args.clients} clients for {args.seconds} s against {state} (pid {process.pid})")
        print("(CPU ms/req: the server's CPU time per request; it rises if the mock slows down, while req/s")
        print("also falls when other work takes the machine's cores)")
        print(f"{'t (s)':>6} {'req/s':>8} {'RSS MB':>8} {'CPU ms/req':>11}")
        last = 0
        used = cpu_seconds(process.pid)
        while True:
            time.sleep(args.window)
            elapsed = time.monotonic() - started
            with tally.lock:
                done = tally.done
            now_used = cpu_seconds(process.pid)
            cost = (now_used - used) * 1e3 / max(done - last, 1)
            windows.append((elapsed, done - last, rss_mb(process.pid), cost))
            print(
                f"{elapsed:>6.0f} {(done - last) / args.window:>8.0f} {windows[-1][2]:>8.0f} {cost:>11.2f}", flush=True
            )
            last, used = done, now_used
            if elapsed >= args.seconds or done >= args.max_requests:
                break
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        peak = max(w[2] for w in windows)
        print("\nby operation (client side, keep-alive)")
        print(f"{'operation':<11} {'requests':>9} {'p50':>9} {'p99':>9}")
        for op in MIX:
            samples = sorted(tally.latencies[op])
            if samples:
                p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
                print(f"{op:<11} {len(samples):>9,} {statistics.median(samples) * 1e3:>7.2f}ms {p99 * 1e3:>7.2f}ms")
    failures = []
    span = min(60.0, args.seconds / 3)
    first = [(n, c) for t, n, _, c in windows if t <= span + 0.5 * args.window]
    final = [(n, c) for t, n, _, c in windows if t > windows[-1][0] - span + 0.5 * args.window]
    first_rate = sum(n for n, _ in first) / len(first) / args.window
    last_rate = sum(n for n, _ in final) / len(final) / args.window
    first_cost, last_cost = statistics.median(c for _, c in first), statistics.median(c for _, c in final)
    ratio = last_rate / first_rate if first_rate else 0.0
    print(
        f"\n{tally.done:,} requests; first {span:.0f} s {first_rate:.0f} req/s, "
        f"last {span:.0f} s {last_rate:.0f} req/s ({ratio:.0%}; fails below 85%); server CPU per request "
        f"{first_cost:.2f} then {last_cost:.2f} ms; peak RSS {peak:.0f} MB; "
        f"{len(tally.errors)} 5xx or connection errors; other statuses: {dict(tally.unexpected) or 'none'}"
    )
    if ratio < 0.85:
        failures.append(f"throughput fell to {ratio:.0%} of the first {span:.0f} s")
    if tally.errors:
        failures.append(f"{len(tally.errors)} errors, e.g. {tally.errors[:3]}")
    failures += kept_after_kill(state, extra, tally)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def kept_after_kill(state: Path, extra: list[str], tally: Tally) -> list[str]:
    """After kill -9 and a start on the same file: every acknowledged write of the default state is there."""
    with served(state, extra) as (_, host, port):
        checker = Client(-2, host, port, tally, [], 0)
        missing = []
        for profile_id, version in sorted(tally.versions.items()):
            status, answer = checker.request("GET", f"{LIST}/{profile_id}")
            if status != 200 or answer["access_profile"]["version"] < version:
                missing.append(f"profile {profile_id}: acknowledged version {version}, found {status}")
        for profile_id in sorted(tally.deleted):
            status, _ = checker.request("GET", f"{LIST}/{profile_id}")
            if status != 404:
                missing.append(f"profile {profile_id}: deleted, found {status}")
    print(
        f"after kill -9 and a restart: {len(tally.versions):,} profiles at or past their acknowledged version "
        f"checked, {len(tally.deleted):,} deletes checked; {len(missing)} missing"
    )
    return [f"lost after kill -9: {m}" for m in missing[:5]]


def memory(args: argparse.Namespace) -> int:
    """8 sessions, each 100 creates then `pages` pages of ?limit=100; RSS sampled all along."""
    with tempfile.TemporaryDirectory(prefix="mockserver-soak-") as folder:
        return _memory(args, args.state or Path(folder, "state.sqlite"))


def _memory(args: argparse.Namespace, state: Path) -> int:
    extra = ["--server", args.server] if args.server else []
    tally = Tally()
    peak = [0.0]
    with served(state, extra) as (process, host, port):
        start_rss = rss_mb(process.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                peak[0] = max(peak[0], rss_mb(process.pid))

        def reader(n: int) -> None:
            client = Client(n, host, port, tally, [], 0)
            session = f"memory-{n}"
            for i in range(100):
                status, _ = client.request("POST", LIST, {"name": f"memory {n}-{i}", "description": "m" * 400}, session)
                assert status == 201
            for _ in range(args.pages):
                started = time.perf_counter()
                status, _ = client.request("GET", f"{LIST}?limit=100", None, session)
                tally.add("page", time.perf_counter() - started)
                assert status == 200

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        readers = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join()
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], rss_mb(process.pid))
        pages = sorted(tally.latencies["page"])
    print(
        f"memory: 8 sessions x (100 creates + {args.pages:,} pages of ?limit=100) "
        f"in {time.monotonic() - started:.0f} s; "
        f"page p50 {statistics.median(pages) * 1e3:.1f} ms; RSS {start_rss:.0f} MB at start, peak {peak[0]:.0f} MB "
        f"(limit {args.rss_limit_mb} MB)"
    )
    if peak[0] > args.rss_limit_mb:
        print(f"FAILED: peak RSS {peak[0]:.0f} MB over {args.rss_limit_mb} MB")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", 180)), help="default 180")
    parser.add_argument("--clients", type=int, default=12, help="keep-alive clients (default 12)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per throughput window (default 10)")
    parser.add_argument("--max-requests", type=int, default=5_000_000, help="stop after this many requests")
    parser.add_argument("--seed", type=int, default=22, help="the clients' choices (default 22)")
    parser.add_argument("--state", type=Path, help="the state file (default: a new one in a temporary folder)")
    parser.add_argument("--server", choices=["auto", "waitress", "granian"], help="mockserver serve --server")
    parser.add_argument("--memory", action="store_true", help="run the memory check instead of the soak")
    parser.add_argument("--pages", type=int, default=1000, help="--memory: pages each session reads (default 1000)")
    parser.add_argument("--rss-limit-mb", type=int, default=300, help="--memory: the RSS that fails (default 300)")
    args = parser.parse_args()
    return memory(args) if args.memory else soak(args)


if __name__ == "__main__":
    raise SystemExit(main())
