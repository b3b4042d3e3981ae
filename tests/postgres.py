"""A real, throwaway PostgreSQL for the tests: Debian's ``initdb`` and ``pg_ctl``, started and stopped here.

- **Where.** A folder of its own under the system's temporary folder (the data, the log and the Unix
  socket), listening on 127.0.0.1 at a free port. Each pytest-xdist worker starts its own cluster.
- **Who.** ``initdb`` refuses root, so as root every command runs as the ``postgres`` user
  (``runuser``), which owns the folder; as anyone else, as that user.
- **No password.** ``-A trust``: only this machine reaches it, and no credential exists to leak.
- **Quick.** ``fsync=off``: the tests never crash the machine, and a server stopped or killed loses
  nothing, since its write-ahead log is already in the system's cache. What measures durable commits
  (the "shared state" section of ``make bench``) starts a cluster with ``durable=True``: ``fsync=on``,
  every commit synced before it is acknowledged, as a production server runs.
- **Always stopped.** ``stop()`` runs ``pg_ctl -m fast stop`` and removes the folder. If the test
  process dies first (``kill -9`` included), a watchdog process that holds the other end of a pipe
  sees it close, stops the cluster (``-m immediate``) and removes the folder.
- **Faults on demand.** ``Proxy`` is a TCP relay that a mock connects through instead of the server's
  port: it can cut every connection at once, refuse new ones, or cut the one connection whose client
  sends given bytes (a write's own data, then its ``COMMIT``) before those bytes reach the server, which
  is "a connection dropped in the middle of a write".
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

USER = "mock"  # the cluster's superuser (initdb -U), reached without a password
SERVICE_ACCOUNT = "postgres"  # who runs PostgreSQL when the tests run as root (Debian's package creates it)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not on this machine, or cannot be run."""


def bin_dir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's newest ``/usr/lib/postgresql/N/bin``, else the PATH."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found is None:
        raise PostgresUnavailable(
            "PostgreSQL's initdb was not found (/usr/lib/postgresql/N/bin or the PATH): "
            "install Debian's postgresql package (make test does)"
        )
    return Path(found).parent


def _as_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs a program as the cluster's owner, and that owner's uid and gid."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        account = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise PostgresUnavailable(
            f"the tests run as root and initdb refuses root, but there is no {SERVICE_ACCOUNT!r} user to run it: "
            "install Debian's postgresql package, which creates it"
        ) from None
    return ["runuser", "-u", SERVICE_ACCOUNT, "--"], account.pw_uid, account.pw_gid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Runs in a process of its own: waits until the test process closes the pipe (or dies), then, unless
# told the cluster was stopped, stops it at once and removes its folder.
_WATCHDOG = """
import shutil, subprocess, sys
told = sys.stdin.read()
if told != "stopped":
    subprocess.run([*sys.argv[3:], sys.argv[1], "-D", sys.argv[2] + "/data", "-m", "immediate", "-w", "stop"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


@dataclass
class Cluster:
    """One running PostgreSQL server, its folder and port."""

    folder: Path
    port: int
    bin: Path
    prefix: list[str]
    durable: bool = False  # fsync on: a commit is on disk before it is acknowledged
    _watchdog: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string (TCP on 127.0.0.1, as the mock will connect)."""
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """The same as a ``postgresql://`` URL."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
            cwd=self.folder,  # a folder the cluster's owner may enter
        )

    def start(self) -> None:
        """(Re)start the server on its port; raises with the server's log when it does not come up."""
        sync = "on" if self.durable else "off"
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync={sync}"
        started = self.pg_ctl("-o", options, "-l", str(self.log), "-w", "-t", "30", "start", check=False)
        if started.returncode != 0:
            log = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed on port {self.port}: {started.stderr.strip()}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (it may be started again)."""
        self.pg_ctl("-m", mode, "-w", "stop", check=False)

    def close(self) -> None:
        """Stop the server for good and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.write("stopped")
            self._watchdog.stdin.close()
            self._watchdog.wait(timeout=30)


def start_cluster(attempts: int = 5, durable: bool = False) -> Cluster:
    """initdb a new cluster in a temporary folder and start it on a free port (another on a port taken meanwhile);
    ``durable``: with ``fsync`` on."""
    binaries = bin_dir()
    prefix, uid, gid = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="mockserver-pg-"))
    if uid is not None and gid is not None:
        os.chown(folder, uid, gid)
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(binaries / "pg_ctl"), str(folder), *prefix],
        stdin=subprocess.PIPE,
        text=True,
        cwd=folder,
        start_new_session=True,  # a Ctrl-C of the test run reaches the tests, not the watchdog
    )
    cluster = Cluster(folder, 0, binaries, prefix, durable, watchdog)
    try:
        made = subprocess.run(
            [*prefix, str(binaries / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", USER]
            + ["-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=folder,
        )
        if made.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {made.stderr.strip()}")
        for attempt in range(attempts):
            cluster.port = free_port()
            try:
                cluster.start()
                return cluster
            except PostgresUnavailable:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        cluster.close()
        raise


class Proxy:
    """A TCP relay on 127.0.0.1 to a PostgreSQL server, which tests break on purpose.

    Every connection a client opens here gets one to the server and two threads that copy bytes each
    way. ``cut()`` drops every open connection at once; while ``refusing`` is set, a new connection is
    dropped as soon as it arrives; while ``stalled`` is set, bytes wait in the relay both ways (a hung
    server); ``cut_on(b"a", b"b")`` drops the first connection whose client sends ``a`` and then ``b``,
    before the bytes that complete ``b`` reach the server. A dropped connection is
    reset both ways (SO_LINGER 0), as a broken network or a crashed host leaves it: the client reads an
    error, and the server sees its client gone and rolls back whatever that connection had open.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.refusing = False
        # While set, bytes are held in both directions but no connection is closed: a server that hangs
        # (or a network that drops packets while both ends' kernels still answer).
        self.stalled = threading.Event()
        self.accepted = 0  # connections clients opened here, refused ones included
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._trigger: _Trigger | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._accepting = threading.Thread(target=self._accept, name=f"pg-proxy-{self.port}", daemon=True)
        self._accepting.start()

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL that reaches the server through this relay."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={dbname}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    def cut(self) -> int:
        """Drop every open connection; how many there were."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.drop()
        return len(links)

    def cut_on(self, *patterns: bytes) -> threading.Event:
        """Drop the first connection whose client sends ``patterns`` in this order (once); the event is set
        when it has been dropped. Replaces a cut asked for before that has not happened."""
        if not patterns or not all(patterns):
            raise ValueError("cut_on needs at least one non-empty byte string")
        trigger = _Trigger(list(patterns))
        with self._lock:
            self._trigger = trigger
        return trigger.done

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        try:
            self._listener.close()
        finally:
            self.cut()
            self._accepting.join(timeout=5)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was closed
                return
            self.accepted += 1
            if self.refusing:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:  # the server is down: the client sees its connection closed
                _reset(client)
                continue
            server.settimeout(None)
            link = _Link(self, client, server)
            with self._lock:
                self._links.add(link)
            link.start()

    def _fires(self, link: _Link, chunk: bytes) -> _Trigger | None:
        """The cut asked for, if ``chunk`` (which ``link``'s client sent) completes it; it is then claimed."""
        with self._lock:
            trigger = self._trigger
            if trigger is None:
                return None
            matched, tail = trigger.progress.get(link, (0, b""))
            data = tail + chunk
            at = 0
            while matched < len(trigger.patterns):
                found = data.find(trigger.patterns[matched], at)
                if found < 0:
                    break
                at = found + len(trigger.patterns[matched])
                matched += 1
            if matched == len(trigger.patterns):
                self._trigger = None
                return trigger
            # Keep enough of the end for a pattern split across two reads, never bytes already matched.
            keep = max(len(p) for p in trigger.patterns) - 1
            trigger.progress[link] = (matched, data[max(at, len(data) - keep) :])
            return None

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)


@dataclass(eq=False)
class _Trigger:
    patterns: list[bytes]
    done: threading.Event = field(default_factory=threading.Event)
    progress: dict[_Link, tuple[int, bytes]] = field(default_factory=dict)


class _Link:
    """One client connection through a ``Proxy`` and its connection to the server."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self._dropped = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def drop(self) -> None:
        """Reset both sockets (once); the pumps' reads end."""
        if not self._dropped.acquire(blocking=False):
            return
        for sock in (self.client, self.server):
            _reset(sock)
        self.proxy._forget(self)

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if from_client and (trigger := self.proxy._fires(self, chunk)) is not None:
                    self.drop()
                    trigger.done.set()
                    return
                while self.proxy.stalled.is_set() and not self._dropped.locked():
                    time.sleep(0.01)
                sink.sendall(chunk)
        except OSError:
            pass
        self.drop()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset, waking any thread blocked reading it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
