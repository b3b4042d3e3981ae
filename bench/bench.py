"""`make bench`: the served mock beside its peers (Prism, WireMock, Mockoon), and the mock's in-process costs.

Prints, for GET one profile, GET a 25-item list, a partial PUT and a POST create: requests/s, p50
and p99 latency of the mock and of each peer from alternating wrk runs, and the ratios (WireMock and
Mockoon serve the mock's own answers, see bench/peers.py; Prism answers from the spec's examples).
Then the validation cost per request in-process, the cold start to a first answer, the list
latency with 10, 1,000 and 10,000 stored profiles, and the cost of a write with a state file after
0, 10,000 and 100,000 earlier writes (and the start time on the longest history), history reads
(versions, audit pages) after as many writes, GET one while 4 clients write and alone, and what a
session costs: a request in a session against one without, the session lookup alone, creating a
session, and the memory of 100 sessions of the default fixtures. Last, shared state (issue 24): GET one
with ``--workers 2`` against ``--workers 1`` on the same kind of state (the SQLite file, PostgreSQL), and
a partial PUT's latency from one client on PostgreSQL (fsync on) against the SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "access-profiles.yaml"
AUTH = "Bearer bench"
ONE = "/api/governance/access-profiles/1"
LIST = "/api/governance/access-profiles"

# wrk scripts: every write is a real change (unique text), so the mock never answers 409 or a no-op.
PUT_LUA = """
local n = 0
request = function()
  n = n + 1
  local body = '{"description": "bench edit %(run)s-' .. n .. '"}'
  return wrk.format("PUT", nil, {["Content-Type"] = "application/json", ["Authorization"] = "%(auth)s"}, body)
end
"""
POST_LUA = """
local n = 0
request = function()
  n = n + 1
  local body = '{"name": "bench %(run)s-' .. n .. '", '
    .. '"budgets": [{"max_limit": 50, "reset_duration": "1M"}], "tags": ["bench"]}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "%(auth)s"}, body)
end
"""
PEERS = ("prism", "prism-m", "wiremock", "mockoon")
SCENARIOS = [
    ("GET one profile", ONE, None),
    ("GET list of 25", f"{LIST}?limit=25", None),
    ("PUT partial update", ONE, PUT_LUA),
    ("POST create", LIST, POST_LUA),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prism", type=Path, required=True, help="the prism executable")
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per server and scenario")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load each server gets before measuring")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help=f"comma-separated, from: {', '.join(PEERS)} (default all)"
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, from: {', '.join(SECTIONS)} (default all)"
    )
    args = parser.parse_args()
    wanted = _listed(parser, args.sections, SECTIONS)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; wrk -t1 -c10 --latency")
    for section in wanted:
        if section == "served":
            served(args.prism, args.seconds, args.rounds, args.warmup, _listed(parser, args.peers, PEERS))
        else:
            SECTIONS[section]()
    return 0


def _listed(parser: argparse.ArgumentParser, text: str, known: Any) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        parser.error(f"unknown name(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return wanted


# -- served: the mock and its peers side by side ---------------------------------------------------------


def served(prism: Path, seconds: int, rounds: int, warmup: int, peers: list[str]) -> None:
    """Each scenario on the mock as `make serve` runs it and on every peer, the servers taking turns."""
    from peers import Canned, mockoon_command, wiremock_command, wiremock_version

    version = subprocess.run([str(prism), "--version"], capture_output=True, text=True).stdout.strip()
    mock_cmd = [sys.executable, "-m", "mockserver", "serve", "--port", "18080", "--no-watch"]
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        mock_url = stack.enter_context(server(mock_cmd, "http://127.0.0.1:18080"))
        _seed(mock_url)
        answers = _canned(mock_url, Canned)
        commands = {
            "prism": (f"Prism {version}", [str(prism), "mock", str(SPEC), "-h", "127.0.0.1", "-p", "14010"], 14010),
            "prism-m": (
                f"Prism {version} -m -v warn",
                [str(prism), "mock", str(SPEC), "-h", "127.0.0.1", "-p", "14011", "-m", "-v", "warn"],
                14011,
            ),
            "wiremock": (f"WireMock {wiremock_version()}", wiremock_command(Path(folder, "wm"), 14012, answers), 14012),
            "mockoon": ("Mockoon CLI", mockoon_command(Path(folder, "mo"), 14013, answers), 14013),
        }
        urls = {"mock": mock_url}
        labels = {"mock": f"mockserver ({_mock_server(mock_url)})"}
        for key in peers:
            label, command, port = commands[key]
            urls[key] = stack.enter_context(server(command, f"http://127.0.0.1:{port}"))
            labels[key] = label
        if "mockoon" in labels:
            labels["mockoon"] = f"Mockoon CLI {_mockoon_version()}"
        # The JVM compiles its hot paths in the first seconds: every server gets the same warm-up.
        for url in urls.values():
            wrk(f"{url}{ONE}", None, warmup)
        print(f"\nserved: {labels['mock']}, request log on, as `make serve` (state in memory), beside its peers")
        print("WireMock and Mockoon serve the mock's own answers (status, headers, bytes); Prism the spec's examples")
        print(f"median of {rounds} alternating {seconds}-second runs per server, after a {warmup}-second warm-up each;")
        print("'mock x' is the mock's req/s over the row's\n")
        for name, path, lua in SCENARIOS:
            results: dict[str, list[dict[str, float]]] = {key: [] for key in urls}
            for _ in range(rounds):
                for key, base in urls.items():
                    results[key].append(wrk(f"{base}{path}", lua, seconds))
            medians = {key: _median(runs) for key, runs in results.items()}
            header = f"{name:<34} {'req/s':>8} {'p50':>8} {'p99':>8} {'mock x':>7}"
            print(header)
            print("-" * len(header))
            for key, row in medians.items():
                ratio = "" if key == "mock" else f"{_ratio(medians['mock'], row):>7.2f}"
                print(f"  {labels[key]:<32} {row['rps']:>8.0f} {_ms(row['p50']):>8} {_ms(row['p99']):>8} {ratio}")
                bad = sum(r["errors"] for r in results[key])
                if bad:
                    print(f"  {'':<32} ! {bad:.0f} answers with a non-2xx status")
            print()
    servers_side_by_side(seconds, rounds)


def _canned(base: str, canned: Any) -> list[Any]:
    """The mock's own answers to the benchmarked requests, for the peers to serve as they are."""
    found = []
    for method, path, body in (
        ("GET", ONE, None),
        ("GET", f"{LIST}?limit=25", None),
        ("PUT", ONE, {"description": "bench canned"}),
        ("POST", LIST, {"name": f"bench canned {uuid.uuid4().hex[:8]}", "tags": ["bench"]}),
    ):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers={"Authorization": AUTH})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            found.append(
                canned(
                    method,
                    path.split("?")[0],
                    int(response.status),
                    response.headers["Content-Type"],
                    response.read(),
                    response.headers.get("Location"),
                )
            )
    return found


def _mock_server(base: str) -> str:
    """Which HTTP server the mock runs on, from its answer's Server header."""
    with urllib.request.urlopen(urllib.request.Request(f"{base}/__mock/health"), timeout=5) as response:
        software = str(response.headers.get("Server", ""))
    return "granian" if "granian" in software.lower() else "waitress"


def _mockoon_version() -> str:
    package = ROOT / "node_modules" / "@mockoon" / "cli" / "package.json"
    return str(json.loads(package.read_text(encoding="utf-8"))["version"])


def _seed(base: str) -> None:
    for i in range(20):  # the mock starts with 10 profiles; a page of 25 needs more
        call("POST", f"{base}{LIST}", {"name": f"bench seed {i}", "tags": ["bench"]})


def _ratio(one: dict[str, float], other: dict[str, float]) -> float:
    return one["rps"] / other["rps"] if other["rps"] else float("inf")


def servers_side_by_side(seconds: int, rounds: int) -> None:
    """GET one profile: the mock and a trivial app (the server's ceiling) on each candidate server."""
    apps = [sys.executable, str(ROOT / "bench" / "apps.py")]
    granian = [sys.executable, "-m", "granian", "--workers", "1", "--log-level", "warning", "--port", "{port}"]
    # As server/forked.py runs it: RSGI, the Rust side on one thread, uvloop.
    rsgi = [*granian, "--interface", "rsgi", "--runtime-mode", "st", "--loop", "uvloop", "bench.apps:trivial_rsgi"]
    serve = [sys.executable, "-m", "mockserver", "serve", "--no-watch", "--port", "{port}", "--threads"]
    waitress = [*serve[:-1], "--server", "waitress", "--threads"]
    candidates = [
        ("granian RSGI (serve)", [*serve, "8", "--server", "granian"], rsgi),
        ("waitress, 8 threads (fallback)", [*waitress, "8"], [*apps, "trivial", "{port}", "8"]),
        ("waitress, 16 threads", [*waitress, "16"], [*apps, "trivial", "{port}", "16"]),
    ]
    print("\nservers side by side: GET one profile, the mock and a trivial app (ceiling) on each server")
    print(f"median of {rounds} alternating {seconds}-second runs\n")
    header = f"{'server':<30} {'mock req/s':>10} {'p50':>8} {'p99':>8}  {'trivial req/s':>13}  {'of ceiling':>10}"
    print(header)
    print("-" * len(header))
    port = 18100
    for name, mock_cmd, trivial_cmd in candidates:
        runs: dict[str, list[dict[str, float]]] = {"mock": [], "trivial": []}
        commands = [[part.format(port=port + i) for part in cmd] for i, cmd in enumerate((mock_cmd, trivial_cmd))]
        with (
            server(commands[0], f"http://127.0.0.1:{port}") as mock_url,
            server(commands[1], f"http://127.0.0.1:{port + 1}", probe="/") as trivial_url,
        ):
            for _ in range(rounds):
                runs["mock"].append(wrk(f"{mock_url}{ONE}", None, seconds))
                runs["trivial"].append(wrk(f"{trivial_url}/", None, seconds))
        mock, trivial = _median(runs["mock"]), _median(runs["trivial"])
        print(
            f"{name:<30} {mock['rps']:>10.0f} {_ms(mock['p50']):>8} {_ms(mock['p99']):>8}  "
            f"{trivial['rps']:>13.0f}  {mock['rps'] / trivial['rps']:>9.0%}"
        )
        port += 2


@contextmanager
def server(command: list[str], base: str, probe: str = ONE) -> Iterator[str]:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if call("GET", f"{base}{probe}") == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"{command[0]} did not answer within 60 s")
        yield base
    finally:  # also on Ctrl-C: every process started here is stopped here
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call(method: str, url: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": AUTH})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def wrk(url: str, lua: str | None, seconds: float, connections: int = 10) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: {AUTH}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if lua:
            # Each run writes its own names: wrk restarts its counter on every run.
            script.write(lua % {"auth": AUTH, "run": uuid.uuid4().hex[:8]})
            command += ["-s", script.name]
    try:
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _duration(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _duration(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": float(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0.0,
    }


def _duration(text: str) -> float:
    """wrk's latency ("812.00us", "1.20ms", "2.01s") in seconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms"


# -- in-process figures ------------------------------------------------------------------------------


def in_process() -> None:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from mockserver import create_app
    from mockserver.spec.validation import Answer

    app = create_app()
    mock = app.extensions["mockserver"]
    for i in range(20):
        mock.profiles.create({"name": f"in-process {i}", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]}, "b")
    n = 0

    def unique() -> str:
        nonlocal n
        n += 1
        return f"bench {n}"

    cases: list[tuple[str, str, str, Any, Callable[[Any], tuple[int, Any, dict[str, str]]]]] = [
        ("GET one profile", "GET", ONE, None, lambda call: (200, mock.profiles.get(1), {})),
        ("GET list of 25", "GET", f"{LIST}?limit=25", None, lambda call: (200, mock.profiles.list(call.query), {})),
        (
            "PUT partial update",
            "PUT",
            ONE,
            {"description": "x"},
            lambda call: (200, {"access_profile": mock.profiles.update(1, {"description": unique()}, "b")}, {}),
        ),
        (
            "POST create",
            "POST",
            LIST,
            {"name": "x", "budgets": [{"max_limit": 5, "reset_duration": "1M"}]},
            lambda call: (
                201,
                {"access_profile": mock.profiles.create({**call.body, "name": unique()}, "b")},
                {"Location": "/api/governance/access-profiles/1"},
            ),
        ),
    ]
    print("\nin-process validation per request (request check + answer check), 2,000 requests each")
    print(f"{'request':<20} {'p50':>8} {'p99':>8}")
    for name, method, url, body, handle in cases:
        path = url.split("?")[0]
        found = mock.spec.match(path)
        assert found is not None
        route, params = found
        operation = route.operations[method]
        samples = []
        for _ in range(2000):
            environ = EnvironBuilder(method=method, path=url, json=body, headers={"Authorization": AUTH}).get_environ()
            request = Request(environ)
            started = time.perf_counter()
            call = mock.validator.request(request, operation, params)
            checked = time.perf_counter()
            status, payload, headers = handle(call)
            handled = time.perf_counter()
            problems = mock.validator.answer_problems(request, operation, Answer(status, payload, headers))
            done = time.perf_counter()
            assert not problems, problems
            samples.append((checked - started) + (done - handled))
        print(f"{name:<20} {_us(statistics.median(samples)):>8} {_us(_percentile(samples, 99)):>8}")


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}us"


def _percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


# -- cold start ------------------------------------------------------------------------------------


def cold_start() -> None:
    from mockserver import Spec

    print("\ncold start: `mockserver serve` process start to the first 200 for GET one profile")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        first = _start_once(env)
        later = [_start_once(env) for _ in range(5)]
        # A spec of the user's own has no shipped record: its first start validates it.
        own = Path(cache, "own-spec.json")
        document = json.loads(Spec.load(SPEC).json_bytes)
        document["info"]["title"] += f" (bench {uuid.uuid4().hex[:8]})"
        own.write_text(json.dumps(document), encoding="utf-8")
        own_first = _start_once(env, "--spec", str(own))
    print(f"  first start, bundled spec (its validation record ships with it): {first:.2f} s")
    print(f"  first start, a spec of one's own (validated, then cached):       {own_first:.2f} s")
    print(f"  later starts (median of 5; the record is cached):                {statistics.median(later):.2f} s")


def _start_once(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base = re.search(r"(http://\S+)", line).group(1)  # type: ignore[union-attr]
        while True:
            try:
                if call("GET", f"{base}{ONE}") == 200:
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


# -- list latency against the size of the store ------------------------------------------------------


def list_latency() -> None:
    from mockserver import create_app

    print("\nlist latency in-process (Flask test client, full validation), median of 300 requests")
    print(f"{'stored profiles':>15} {'first page':>11} {'page at offset 500':>19} {'?search=bench':>14}")
    for size in (10, 1_000, 10_000):
        app = create_app()
        mock = app.extensions["mockserver"]
        for i in range(size - 10):
            mock.profiles.create({"name": f"stored {i}", "description": "bench profile"}, "b")
        client = app.test_client()
        headers = {"Authorization": AUTH}

        def timed(url: str, client: Any = client, headers: dict[str, str] = headers) -> float:
            samples = []
            for _ in range(300):
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200
            return statistics.median(samples)

        print(
            f"{size:>15,} {_ms(timed(f'{LIST}?limit=25')):>11} {_ms(timed(f'{LIST}?limit=25&offset=500')):>19} "
            f"{_ms(timed(f'{LIST}?limit=25&search=bench')):>14}"
        )


# -- persistence: a write's cost against the length of the history ---------------------------------


def persistence() -> None:
    from mockserver import Settings, create_app
    from mockserver.storage.sqlite import SqliteState

    rounds = 400
    print(
        f"\npersistence: partial PUT with a state file (Flask test client, full validation), p50 of {rounds} requests"
    )
    print("each, the six apps taking turns, so the disk's moods reach every column alike")
    print(f"{'earlier writes':>15} {'PUT p50, state file':>20} {'PUT p50, no state file':>23} {'file size':>10}")
    with tempfile.TemporaryDirectory() as folder:
        apps: dict[tuple[int, bool], Any] = {}
        sizes: dict[int, float] = {}
        for writes in (0, 10_000, 100_000):
            path = Path(folder, f"state-{writes}.sqlite")
            # The history of `writes` partial updates, made by the domain and saved in one go.
            app = create_app(Settings())
            mock = app.extensions["mockserver"]
            ids = list(mock.store.snapshot().profiles)
            for n in range(writes):
                mock.profiles.update(ids[n % len(ids)], {"description": f"earlier write {n}"}, "bench")
            file = SqliteState(path)
            file.replace(mock.store.snapshot())
            file.close()
            sizes[writes] = sum(p.stat().st_size for p in Path(folder).glob(path.name + "*")) / 1e6
            apps[writes, False] = app
            apps[writes, True] = create_app(Settings(state=path))
        samples = _put_turns(apps, rounds)
        for writes in (0, 10_000, 100_000):
            with_file, without = statistics.median(samples[writes, True]), statistics.median(samples[writes, False])
            print(f"{writes:>15,} {_ms(with_file):>20} {_ms(without):>23} {sizes[writes]:>8.1f}MB")
        _history_reads({writes: app for (writes, kept), app in apps.items() if kept}, rounds)
        for (_, kept), app in apps.items():
            if kept:
                app.extensions["mockserver"].store.close()
        longest = Path(folder, "state-100000.sqlite")
        starts = [_start_once(dict(os.environ), "--state", str(longest)) for _ in range(3)]
    print(
        f"start with a state file holding 100,000 writes (process start to the first 200, median of 3): "
        f"{statistics.median(starts):.2f} s"
    )
    _reads_beside_writers()


def _put_turns(apps: dict[tuple[int, bool], Any], rounds: int) -> dict[tuple[int, bool], list[float]]:
    """Seconds of each partial PUT, per app; the apps take turns, one request each."""
    clients = {key: app.test_client() for key, app in apps.items()}
    headers = {"Authorization": AUTH}
    samples: dict[tuple[int, bool], list[float]] = {key: [] for key in apps}
    for n in range(rounds):
        for key, client in clients.items():
            started = time.perf_counter()
            response = client.put(ONE, json={"description": f"bench {key} {n}"}, headers=headers)
            samples[key].append(time.perf_counter() - started)
            assert response.status_code == 200, response.json
    return samples


HISTORY_READS = {
    "versions (3 rows)": "{probe}/versions",
    "audit page, all": f"{LIST}/audit-logs?limit=25",
    "audit page, action": f"{LIST}/audit-logs?action=update&limit=25",
    "audit page, profile": "{probe}/audit-logs?limit=25",
}


def _history_reads(apps: dict[int, Any], rounds: int) -> None:
    """p50 of history reads on state files after 0, 10,000 and 100,000 writes, the files taking turns.

    Each file gets a new profile with three versions, so the versions read returns the same rows
    whatever the history around it: what changes between columns is only the history's length.
    """
    headers = {"Authorization": AUTH}
    clients = {writes: app.test_client() for writes, app in apps.items()}
    probes = {}
    for writes, client in clients.items():
        created = client.post(LIST, json={"name": "bench history probe"}, headers=headers).json["access_profile"]
        for n in range(2):
            client.put(f"{LIST}/{created['id']}", json={"description": f"probe {n}"}, headers=headers)
        probes[writes] = f"{LIST}/{created['id']}"
    samples: dict[tuple[str, int], list[float]] = {(name, writes): [] for name in HISTORY_READS for writes in apps}
    for _ in range(rounds):
        for name, url in HISTORY_READS.items():
            for writes, client in clients.items():
                started = time.perf_counter()
                response = client.get(url.format(probe=probes[writes]), headers=headers)
                samples[name, writes].append(time.perf_counter() - started)
                assert response.status_code == 200, response.json
    print(f"\nhistory reads with a state file, p50 of {rounds} requests each, the files taking turns")
    print("(target: within 1.5x of the fresh file)")
    print(f"{'read':<22}" + "".join(f" {f'after {w:,}':>14}" for w in apps) + f" {'worst / fresh':>14}")
    for name in HISTORY_READS:
        p50 = [statistics.median(samples[name, writes]) for writes in apps]
        print(f"{name:<22}" + "".join(f" {_ms(v):>14}" for v in p50) + f" {max(p50) / p50[0]:>13.2f}x")


def _reads_beside_writers(seconds: int = 5, rounds: int = 3) -> None:
    """GET one p50 on `mockserver serve --state` (one wrk connection), alone and while another wrk keeps
    4 connections writing partial PUTs to another profile of the same state (target: within 2x)."""
    import socket
    import threading

    with socket.socket() as probe:  # a free port: a fixed one may still be held by a run just ended
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        state = str(Path(folder, "state.sqlite"))
        command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), "--no-watch", "--quiet"]
        with server([*command, "--state", state], f"http://127.0.0.1:{port}") as base:
            kind = _mock_server(base)
            alone: list[dict[str, float]] = []
            beside: list[dict[str, float]] = []
            writes: list[dict[str, float]] = []
            for _ in range(rounds):
                alone.append(wrk(f"{base}{ONE}", None, seconds, connections=1))
                writers = threading.Thread(
                    target=lambda: writes.append(wrk(f"{base}{LIST}/2", PUT_LUA, seconds + 2, connections=4))
                )
                writers.start()
                time.sleep(1)
                beside.append(wrk(f"{base}{ONE}", None, seconds, connections=1))
                writers.join()
    quiet, busy, written = _median(alone), _median(beside), _median(writes)
    print(
        f"\nGET one on `mockserver serve --state` ({kind}; wrk, 1 connection; median of {rounds} alternating "
        f"{seconds}-second runs):\n  p50 alone {_ms(quiet['p50'])}, while 4 connections write "
        f"{_ms(busy['p50'])} ({busy['p50'] / quiet['p50']:.2f}x; target within 2x); "
        f"p99 {_ms(quiet['p99'])} and {_ms(busy['p99'])}; the writers' PUTs: {written['rps']:.0f}/s, "
        f"p50 {_ms(written['p50'])}"
    )


# -- sessions: what isolation costs ------------------------------------------------------------------


def sessions() -> None:
    import tracemalloc

    from mockserver import Settings, create_app
    from mockserver.server.sessions import HEADER

    app = create_app()
    client = app.test_client()
    registry = app.extensions["mockserver.sessions"]
    plain = {"Authorization": AUTH}
    named = {**plain, HEADER: "bench"}
    client.get(ONE, headers=named)  # the session exists before the timing starts
    print("\nsessions: a request in a session against one without (Flask test client, full validation)")
    print("p50 of 3,000 requests each, the two kinds alternating")
    print(f"{'request':<20} {'no session':>11} {'in a session':>13} {'difference':>11}")
    for name, method in (("GET one profile", "GET"), ("PUT partial update", "PUT")):
        samples: dict[str, list[float]] = {"plain": [], "named": []}
        for n in range(3000):
            for kind, headers in (("plain", plain), ("named", named)):
                body = {"description": f"bench {kind} {n}"} if method == "PUT" else None
                started = time.perf_counter()
                response = client.open(ONE, method=method, json=body, headers=headers)
                samples[kind].append(time.perf_counter() - started)
                assert response.status_code == 200, response.json
        without, within = statistics.median(samples["plain"]), statistics.median(samples["named"])
        print(f"{name:<20} {_us(without):>11} {_us(within):>13} {_us(within - without):>11}")

    # The same without the test client (which builds the extra header too): routes.dispatch on
    # prebuilt requests, so the difference is what the mock does for a session.
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from mockserver.server.routes import dispatch

    base = app.extensions["mockserver"]
    built = {
        kind: EnvironBuilder(path=ONE, headers=headers).get_environ()
        for kind, headers in (("plain", plain), ("named", named))
    }
    timed: dict[str, list[float]] = {"plain": [], "named": []}
    for _ in range(4000):
        for kind, environ in built.items():
            request = Request(dict(environ))
            started = time.perf_counter()
            dispatch(base, request, registry.pick)
            timed[kind].append(time.perf_counter() - started)
    without, within = statistics.median(timed["plain"]), statistics.median(timed["named"])
    print(
        f"{'GET, dispatch alone':<20} {_us(without):>11} {_us(within):>13} {_us(within - without):>11}"
        "   (prebuilt requests, p50 of 4,000)"
    )

    environ_plain = {"PATH_INFO": ONE}
    environ_named = {"PATH_INFO": ONE, "HTTP_X_MOCKSERVER_SESSION": "bench"}
    for label, environ in (("no session named", environ_plain), ("an existing session", environ_named)):
        rounds = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(100_000):
                registry.pick(environ)
            rounds.append((time.perf_counter() - started) / 100_000)
        print(f"  the session lookup alone ({label}): {min(rounds) * 1e9:.0f} ns (best of 5 x 100,000)")

    tracemalloc.start()
    fresh = create_app()
    fresh_registry = fresh.extensions["mockserver.sessions"]
    before, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    for n in range(100):
        fresh_registry.pick({"HTTP_X_MOCKSERVER_SESSION": f"worker-{n}"})
    created = (time.perf_counter() - started) / 100
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  100 sessions of the default fixtures: {(after - before) / 1e6:.2f} MB of Python objects "
        f"(tracemalloc), {(after - before) / 100 / 1e3:.0f} kB each; creating one: {_ms(created)}"
    )
    with tempfile.TemporaryDirectory() as folder:
        stored = create_app(Settings(state=Path(folder, "state.sqlite")))
        stored_registry = stored.extensions["mockserver.sessions"]
        started = time.perf_counter()
        for n in range(20):
            stored_registry.pick({"HTTP_X_MOCKSERVER_SESSION": f"worker-{n}"})
        each = (time.perf_counter() - started) / 20
        print(f"  creating one with a state file (its fixtures written and synced): {_ms(each)}")
        stored.extensions["mockserver"].store.close()


# -- shared state: workers on one state, PostgreSQL against the SQLite file ----------------------------


# (state kind, workers, threads per worker) of each server the section starts: the default 8 threads, and
# 1 thread, which served the most on one worker in "servers side by side".
SHARED_SERVERS = [
    ("SQLite file", 1, 8),
    ("SQLite file", 2, 8),
    ("SQLite file", 1, 1),
    ("SQLite file", 2, 1),
    ("PostgreSQL", 1, 8),
    ("PostgreSQL", 2, 8),
]


def shared_state(seconds: int = 5, rounds: int = 3, warmup: int = 3) -> None:
    """GET one on ``--workers 2`` against ``--workers 1`` over the same kind of state (target: at least 1.4x),
    and a partial PUT's p50 from one client on PostgreSQL against the SQLite file (target: within 3x).

    Every server runs at once, each on a state of its own (a file, a database), and wrk measures them
    taking turns, on the same two cores as the servers. PostgreSQL is a throwaway local cluster (the
    tests' harness, tests/postgres.py) with fsync on, so its commits are as durable as the SQLite file's.
    One worker on a file is the single-process mock (no catch-up query); two share the file.
    """
    import socket

    import psycopg

    sys.path.insert(0, str(ROOT / "tests"))  # the tests' PostgreSQL harness: Debian's initdb and pg_ctl
    from postgres import start_cluster

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    load_before = os.getloadavg()[0]  # the machine's other work moves every figure: said with them
    cluster = start_cluster(durable=True)
    try:
        with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
            urls: dict[tuple[str, int, int], str] = {}
            for n, key in enumerate(SHARED_SERVERS):
                kind, workers, threads = key
                if kind == "PostgreSQL":
                    with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
                        admin.execute(f"CREATE DATABASE state{n}")
                    state = cluster.url(f"state{n}")
                else:
                    state = str(Path(folder, f"state{n}.sqlite"))
                port = free_port()
                command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), "--no-watch"]
                command += ["--state", state, "--workers", str(workers), "--threads", str(threads)]
                urls[key] = stack.enter_context(server(command, f"http://127.0.0.1:{port}"))
            served_on = _mock_server(urls[SHARED_SERVERS[0]])
            for base in urls.values():
                wrk(f"{base}{ONE}", None, warmup)
            gets: dict[tuple[str, int, int], list[dict[str, float]]] = {key: [] for key in urls}
            puts: dict[str, list[dict[str, float]]] = {"SQLite file": [], "PostgreSQL": []}
            for _ in range(rounds):
                for key, base in urls.items():
                    gets[key].append(wrk(f"{base}{ONE}", None, seconds))
                for kind in puts:
                    puts[kind].append(wrk(f"{urls[kind, 1, 8]}{ONE}", PUT_LUA, seconds, connections=1))
    finally:
        cluster.close()

    print(f"\nshared state: `mockserver serve --state ... --workers N --threads T` ({served_on}, request log on),")
    print(f"every server running at once, wrk on the same {os.cpu_count()} cores; median of {rounds} alternating")
    print(f"{seconds}-second runs. PostgreSQL: a local cluster of its own, fsync on (as durable as the SQLite file).")
    print(f"Load average (1 min) before the section: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}\n")
    header = f"{'GET one profile':<38} {'req/s':>8} {'p50':>8} {'p99':>8} {'x 1 worker':>11}"
    print(header)
    print("-" * len(header))
    medians = {key: _median(runs) for key, runs in gets.items()}
    ratios: dict[tuple[str, int, int], float] = {}
    for key, row in medians.items():
        kind, workers, threads = key
        ratios[key] = _ratio(row, medians[kind, 1, threads])
        shown = "" if workers == 1 else f"{ratios[key]:>10.2f}x"
        label = f"{kind}, {workers} worker{'s' if workers > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
        print(f"  {label:<36} {row['rps']:>8.0f} {_ms(row['p50']):>8} {_ms(row['p99']):>8} {shown:>11}")
        bad = sum(r["errors"] for r in gets[key])
        if bad:
            print(f"  {'':<36} ! {bad:.0f} answers with a non-2xx status")
    written = {kind: _median(runs) for kind, runs in puts.items()}
    header = f"{'PUT partial update, 1 client':<38} {'req/s':>8} {'p50':>8} {'p99':>8} {'x SQLite':>11}"
    print(f"\n{header}")
    print("-" * len(header))
    for kind, row in written.items():
        shown = "" if kind == "SQLite file" else f"{row['p50'] / written['SQLite file']['p50']:>10.2f}x"
        label = f"{kind}, 1 worker x 8 threads"
        print(f"  {label:<36} {row['rps']:>8.0f} {_ms(row['p50']):>8} {_ms(row['p99']):>8} {shown:>11}")
        bad = sum(r["errors"] for r in puts[kind])
        if bad:
            print(f"  {'':<36} ! {bad:.0f} answers with a non-2xx status")
    slower = written["PostgreSQL"]["p50"] / written["SQLite file"]["p50"]

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    two = [(key, ratio) for key, ratio in ratios.items() if key[1] == 2]
    print("\ntargets (issue 24):")
    for (kind, _, threads), ratio in two:
        print(
            f"  GET one, 2 workers over 1, at least 1.4x ({kind}, {threads} thread(s) each): {ratio:.2f}x, "
            f"{verdict(round(ratio, 2) >= 1.4)}"
        )
    print(f"  PUT p50 on PostgreSQL within 3x of the SQLite file's: {slower:.2f}x, {verdict(round(slower, 2) <= 3)}")


SECTIONS: dict[str, Callable[[], None]] = {
    "served": lambda: None,  # needs the Prism path: run by main()
    "in-process": in_process,
    "cold-start": cold_start,
    "list": list_latency,
    "persistence": persistence,
    "sessions": sessions,
    "shared-state": shared_state,
}


if __name__ == "__main__":
    raise SystemExit(main())
