"""Log lines off the request path: a request only puts its record on a queue; one thread formats
and writes them, in order and in batches, so the threads that serve never wait on the terminal.

- ``REQUESTS`` is the logger of the one line per request; its records carry the line's fields in
  ``record.request``, so the JSON format does not parse text.
- ``LogWriter.stop()`` writes what is still queued; ``mockserver serve`` calls it on Ctrl-C,
  SIGTERM and a normal exit.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from typing import Any, TextIO

from mockserver.settings import LogFormat

REQUESTS = "mockserver.requests"
requests_log = logging.getLogger(REQUESTS)
_STOP = None  # the sentinel that ends the writer
GATHER_S = 0.02  # how long the writer lets lines gather before it writes them (see LogWriter)
# Query parameters whose values never reach the journal or the log: a credential sent in a URL.
SECRET_QUERY_WORDS = ("token", "key", "secret", "password", "passwd", "auth", "signature", "session", "cookie")


_SECRET = re.compile("|".join(SECRET_QUERY_WORDS).encode(), re.IGNORECASE)


def has_secret(query_string: bytes) -> bool:
    """Whether a raw query string may carry a credential (cheap: most requests have none)."""
    return bool(query_string) and _SECRET.search(query_string) is not None


def public_query(args: Mapping[str, Any]) -> dict[str, list[str]]:
    """A query (werkzeug's ``request.args``) as the journal and the log show it: credential-like values hidden."""
    return {
        name: ["[redacted]"] * len(values) if any(w in name.lower() for w in SECRET_QUERY_WORDS) else values
        for name, values in args.to_dict(flat=False).items()  # type: ignore[attr-defined]
    }


def public_path(path: str, query: dict[str, list[str]]) -> str:
    shown = "&".join(f"{name}={value}" for name, values in query.items() for value in values)
    return path + (f"?{shown}" if shown else "")


def log_request(
    method: str,
    path: str,
    operation_id: str | None,
    status: int,
    duration_ms: float,
    note: str | None,
    session: str | None = None,
    **more: object,
) -> None:
    """The one line of a request: ``METHOD PATH operationId STATUS TIMEms[ [session NAME]][ - note]``,
    with its fields (``more`` included) for the JSON format. Callers check
    ``requests_log.isEnabledFor(INFO)`` first."""
    if session is not None:
        more["session"] = session
    record = RequestRecord(
        (
            method,
            path,
            operation_id or "-",
            status,
            duration_ms,
            f" [session {session}]" if session is not None else "",
            f" - {note}" if note else "",
        ),
        {
            "method": method,
            "path": path,
            "operation_id": operation_id,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "reason": note,
            **more,
        },
    )
    requests_log.handle(record)


# When logging was loaded, in seconds (``logging._startTime``: a float before Python 3.13, nanoseconds since).
_STARTED: float = logging._startTime / 1e9 if isinstance(logging._startTime, int) else logging._startTime  # type: ignore[attr-defined]


class RequestRecord(logging.LogRecord):
    """A request's log record, made in a fraction of a plain record's time (which was about a third of
    what the line cost a request: it looks up the thread's and the process's names, and more).

    Only what changes from one request to the next is worked out; the rest is copied from ``FIXED``:
    where the record comes from (this function; no stack walk for the caller's line, which no format
    shows), and no process, as ``logging`` records it when ``logProcesses`` is off. The thread is
    named, as a plain record names it (a fraction of a microsecond): a handler of the user's may sort
    lines by thread. Any handler or format finds every attribute of a record.
    """

    FIXED: dict[str, object] = {
        "name": REQUESTS,
        "msg": "%s %s %s %d %.1fms%s%s",
        "levelno": logging.INFO,
        "levelname": "INFO",
        "pathname": __file__,
        "filename": "logs.py",
        "module": "logs",
        "lineno": 0,
        "funcName": "log_request",
        "exc_info": None,
        "exc_text": None,
        "stack_info": None,
        "processName": None,
        "process": None,
        "taskName": None,
    }

    def __init__(self, args: tuple[object, ...], request: dict[str, object]) -> None:  # no super(): see above
        now = time.time_ns()
        created = now / 1e9
        self.__dict__.update(
            self.FIXED,
            args=args,
            request=request,
            created=created,
            msecs=(now % 1_000_000_000) // 1_000_000,
            relativeCreated=(created - _STARTED) * 1000,
            thread=threading.get_ident(),
            threadName=threading.current_thread().name,
        )


class TextFormatter(logging.Formatter):
    """``10:42:07 PUT /api/... updateAccessProfile 400 1.9ms - reason``.

    The time is formatted once a second: ``time.localtime`` may look at the time zone's file on every
    call, and lines come by the thousand each second.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")
        self._second = -1
        self._shown = ""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.stack_info:  # a traceback to add: the standard way
            return super().format(record)
        second = int(record.created)
        if second != self._second:
            self._second, self._shown = second, time.strftime("%H:%M:%S", time.localtime(second))
        return f"{self._shown} {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: a request's fields, or the level and message of any other line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._shown = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # once a second, as the text format's time
            self._second = second
            self._shown = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", "")
        when = f"{self._shown}.{int(record.msecs):03d}Z"
        fields = getattr(record, "request", None)
        if fields is not None:
            return json.dumps({"time": when, **fields}, ensure_ascii=False)
        # A traceback is already in the message: the queue handler merged it there (see _Handler).
        line = {"time": when, "level": record.levelname.lower(), "message": record.getMessage()}
        return json.dumps(line, ensure_ascii=False)


class _Handler(QueueHandler):
    """Puts records on the queue. A request line goes as it is: its arguments are plain values, so the
    writer thread formats it. Any other record is merged first (message, arguments and traceback in one
    string), as QueueHandler does, since its arguments may change after the call."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.name == REQUESTS:
            return record
        return super().prepare(record)  # type: ignore[no-any-return]


class LogWriter:
    """A queue for log records and the one thread that writes them to ``stream``.

    Woken by a record, the thread first lets the lines of the next ``gather`` seconds join it, then
    writes them all at once, ``batch`` at a time: woken for every line, it took the interpreter lock
    from the serving threads once a request, which cost a served request more than making its line
    did. It gathers whether or not other lines already wait: under sustained load they always do, and
    a writer that went straight on woke every ten lines or so (331 writes for 3,310 lines in 0.4 s,
    where about 20 do), which cost a served GET about 40 us of CPU, a tenth of it.
    A line shows at most ``gather`` seconds late; a backlog of full batches is written without pauses.
    """

    def __init__(
        self, stream: TextIO, formatter: logging.Formatter, batch: int = 1000, gather: float = GATHER_S
    ) -> None:
        self.stream = stream
        self.formatter = formatter
        self.batch = batch
        self.gather = gather
        self._queue: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self.handler = _Handler(self._queue)
        self._thread = threading.Thread(target=self._run, name="mockserver-log", daemon=True)

    def start(self) -> LogWriter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Write everything queued so far, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        backlog = False  # the last batch was full: more wait already, write on without gathering
        while True:
            batch = [self._queue.get()]
            if batch[0] is not _STOP and self.gather and not backlog:  # others follow: let them gather
                time.sleep(self.gather)
            while len(batch) < self.batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            backlog = len(batch) >= self.batch
            lines = [self.formatter.format(record) for record in batch if record is not _STOP]
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # the terminal went away: nothing left to write to
                    return
            if _STOP in batch:
                return


def configure(stream: TextIO, log_format: LogFormat, quiet: bool) -> LogWriter:
    """Route every log record of the process through one writer; ``quiet`` drops the request lines."""
    formatter: logging.Formatter = JsonFormatter() if log_format is LogFormat.JSON else TextFormatter()
    writer = LogWriter(stream, formatter).start()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(writer.handler)
    root.setLevel(logging.INFO)
    logging.getLogger(REQUESTS).setLevel(logging.WARNING if quiet else logging.INFO)
    # waitress warns for every request that waits for a thread under load; one request line is enough.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return writer
