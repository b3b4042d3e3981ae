"""A real, throwaway PostgreSQL for the tests: Debian's ``initdb`` and ``pg_ctl``, started and stopped here.

- **Where.** A folder of its own under the system's temporary folder (the data, the log and the Unix
  socket), listening on 127.0.0.1 at a free port. Each pytest-xdist worker starts its own cluster.
- **Who.** ``initdb`` refuses root, so as root every command runs as the ``postgres`` user
  (``runuser``), which owns the folder; as anyone else, as that user.
- **No password.** ``-A trust``: only this machine reaches it, and no credential exists to leak.
- **Quick.** ``fsync=off``: the tests never crash the machine, and a server stopped or killed loses
  nothing, since its write-ahead log is already in the system's cache. A test that measures durable
  commits must start a cluster with ``durable=True``.
- **Always stopped.** ``stop()`` runs ``pg_ctl -m fast stop`` and removes the folder. If the test
  process dies first (``kill -9`` included), a watchdog process that holds the other end of a pipe
  sees it close, stops the cluster (``-m immediate``) and removes the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
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


def start_cluster(attempts: int = 5) -> Cluster:
    """initdb a new cluster in a temporary folder and start it on a free port (another on a port taken meanwhile)."""
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
    cluster = Cluster(folder, 0, binaries, prefix, watchdog)
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
