"""Log lines written off the request path: every line, in order, flushed on the way out; JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import CANONICAL
from serving import Served, serve

from mockserver.server.logs import JsonFormatter, LogWriter, RequestRecord, TextFormatter, log_request

AUTH = {"Authorization": "Bearer logs"}
REQUEST_LINE = re.compile(r"^\d\d:\d\d:\d\d (GET|PUT|POST|DELETE) (\S+) (\S+) (\d{3}) \d+\.\dms( - .*)?$")


class Counting(io.StringIO):
    """A stream that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def record(message: str, **request: object) -> logging.LogRecord:
    made = logging.LogRecord("mockserver.requests", logging.INFO, __file__, 1, message, None, None)
    if request:
        made.request = request
    return made


def test_the_writer_writes_every_record_of_a_burst_in_the_order_each_thread_sent_it() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, logging.Formatter("%(message)s"), batch=64).start()

    def burst(thread: int) -> None:
        for n in range(2000):
            writer.handler.handle(record(f"{thread} {n}"))

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 8 * 2000
    for thread in range(8):
        assert [int(line.split()[1]) for line in lines if line.split()[0] == str(thread)] == list(range(2000))


def test_stop_writes_what_is_still_queued_and_later_stops_are_harmless() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, logging.Formatter("%(message)s"))
    for n in range(500):  # queued before the thread even runs
        writer.handler.handle(record(f"line {n}"))
    writer.start()
    writer.stop()
    writer.stop()
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(500)]


def test_a_request_record_has_every_field_of_a_plain_one() -> None:
    """``RequestRecord`` skips ``LogRecord.__init__``; any format (pytest's, say) still finds its fields."""
    plain = logging.LogRecord("mockserver.requests", logging.INFO, __file__, 1, "m", None, None)
    made = RequestRecord(("GET", "/x", "getX", 200, 0.42, "", " - why"), {"method": "GET"})
    assert set(vars(plain)) <= set(vars(made))
    assert made.getMessage() == "GET /x getX 200 0.4ms - why"
    assert abs(made.created - time.time()) < 1
    everything = logging.Formatter(" ".join(f"%({name})s" for name in vars(plain)))
    assert {"mockserver.requests", "INFO", "logs.py", "log_request"} <= set(everything.format(made).split())


def test_lines_that_come_together_are_written_together() -> None:
    stream = Counting()
    writer = LogWriter(stream, TextFormatter()).start()
    for n in range(500):
        writer.handler.handle(RequestRecord(("GET", f"/{n}", "getX", 200, 0.1, "", ""), {}))
        if n % 50 == 0:
            time.sleep(0.001)  # requests arrive over some milliseconds
    writer.stop()
    assert len(stream.getvalue().splitlines()) == 500
    assert stream.writes <= 5  # woken once a line, it wrote 11 times or more


def test_a_steady_stream_of_lines_is_written_in_batches_not_line_by_line() -> None:
    """Under sustained load the queue is never empty when the writer wakes; it must still let lines
    gather, or it wakes (and takes the interpreter lock from the serving threads) for every few lines."""

    stream = Counting()
    writer = LogWriter(stream, TextFormatter()).start()
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 0.4:  # a line every 0.1 ms or so, for 0.4 s
        writer.handler.handle(RequestRecord(("GET", f"/{n}", "getX", 200, 0.1, "", ""), {}))
        n += 1
        if n % 10 == 0:
            time.sleep(0.001)
    elapsed = time.monotonic() - started
    writer.stop()
    assert len(stream.getvalue().splitlines()) == n
    # One write per gathering interval (GATHER_S, 20 ms), and the last one at the stop.
    assert stream.writes <= elapsed / 0.02 + 3, (stream.writes, n)


def test_log_request_reaches_every_handler_as_a_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mockserver.requests"):
        log_request("PUT", "/p", None, 400, 1.25, "bad", session="s1")
    (found,) = caplog.records
    assert found.getMessage() == "PUT /p - 400 1.2ms [session s1] - bad"
    assert found.request == {  # type: ignore[attr-defined]
        "method": "PUT",
        "path": "/p",
        "operation_id": None,
        "status": 400,
        "duration_ms": 1.25,
        "reason": "bad",
        "session": "s1",
    }


def test_the_text_format_is_time_then_message() -> None:
    line = TextFormatter().format(record("GET /x getX 200 0.4ms"))
    assert re.fullmatch(r"\d\d:\d\d:\d\d GET /x getX 200 0\.4ms", line)


def test_json_lines_carry_the_request_fields_and_other_lines_their_level() -> None:
    fields = {"method": "PUT", "path": "/p", "operation_id": "u", "status": 400, "duration_ms": 1.2, "reason": "r"}
    request_line = json.loads(JsonFormatter().format(record("ignored", **fields)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", request_line.pop("time"))
    assert request_line == fields
    other = json.loads(JsonFormatter().format(record("spec reloaded")))
    assert (other["level"], other["message"]) == ("info", "spec reloaded")


# -- served: the lines `mockserver serve` writes ---------------------------------------------------


def request_lines(server: Served) -> list[str]:
    return [line.rstrip("\n") for line in server.lines if REQUEST_LINE.match(line.rstrip("\n"))]


def burst_then_stop(server: Served, count: int, sig: int) -> None:
    """``count`` requests one after the other on one connection, then the signal at once."""
    with requests.Session() as session:
        for n in range(count):
            assert session.get(f"{server.url}{CANONICAL}?limit=1&offset={n}", headers=AUTH).status_code == 200
    assert server.stop(sig) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_every_line_of_a_burst_is_written_in_order_before_the_process_ends(sig: int) -> None:
    with serve() as server:
        burst_then_stop(server, 600, sig)
    offsets = [int(line.split("offset=")[1].split()[0]) for line in request_lines(server)]
    assert offsets == list(range(600))
    assert "mockserver stopped" in "".join(server.lines)


@pytest.mark.slow
def test_concurrent_clients_get_one_line_each() -> None:
    with serve() as server:

        def client(worker: int) -> None:
            with requests.Session() as session:
                for n in range(100):
                    session.get(f"{server.url}{CANONICAL}/1?w={worker}&n={n}", headers=AUTH)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        assert server.stop(signal.SIGTERM) == 0
    lines = request_lines(server)
    assert len(lines) == 800
    seen = {line.split()[2] for line in lines}
    assert seen == {f"{CANONICAL}/1?w={w}&n={n}" for w in range(8) for n in range(100)}


@pytest.mark.slow
def test_json_log_lines_parse_and_quiet_leaves_the_request_lines_out() -> None:
    with serve("--log-format", "json") as server:
        requests.get(f"{server.url}{CANONICAL}/1", headers=AUTH, timeout=10)
        requests.put(f"{server.url}{CANONICAL}/1", json={"tags": ["t"] * 51}, headers=AUTH, timeout=10)
        assert server.stop(signal.SIGTERM) == 0
    parsed = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert [(p["method"], p["operation_id"], p["status"]) for p in parsed] == [
        ("GET", "getAccessProfile", 200),
        ("PUT", "updateAccessProfile", 400),
    ]
    assert parsed[1]["reason"] == "tags: expected at most 50 items, got 51"
    assert parsed[0]["reason"] is None and parsed[0]["duration_ms"] > 0

    with serve("--quiet") as quiet:
        requests.get(f"{quiet.url}{CANONICAL}/1", headers=AUTH, timeout=10)
        time.sleep(0.2)
        assert quiet.stop(signal.SIGTERM) == 0
    assert request_lines(quiet) == []
    assert "mockserver stopped" in "".join(quiet.lines)


def test_a_credential_sent_in_the_query_reaches_neither_the_log_nor_the_journal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from conftest import Api

    from mockserver import Settings, create_app

    api = Api(create_app(Settings()))
    with caplog.at_level(logging.INFO, logger="mockserver.requests"):
        api.get(f"{CANONICAL}?limit=2&api_key=sk-secret-1234&access_token=abc")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "mockserver.requests"]
    assert line.startswith(f"GET {CANONICAL}?limit=2&api_key=[redacted]&access_token=[redacted] listAccessProfiles")
    (entry,) = api.mock.journal.entries()
    assert entry.query == {"limit": ["2"], "api_key": ["[redacted]"], "access_token": ["[redacted]"]}
    assert "sk-secret" not in caplog.text
