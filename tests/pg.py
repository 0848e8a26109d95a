"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` binaries, a cluster in a temporary
folder, listening on 127.0.0.1 only (a free port), trust authentication, no fsync.

``postgres_server()`` is a context manager yielding a ``Postgres`` (``.url(db)`` after
``.create_database(db)``); it raises ``PostgresUnavailable`` with the reason when the binaries are
missing or the server does not start, so a fixture can skip with that reason. PostgreSQL refuses
to run as root: as root the cluster belongs to the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "compframe"


class PostgresUnavailable(RuntimeError):
    pass


@dataclass
class Postgres:
    port: int
    bindir: Path
    as_user: list[str]

    def url(self, db: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, db: str) -> str:
        """Create database ``db`` and return its URL."""
        _run([*self.as_user, str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, db])
        return self.url(db)


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "createdb").exists():
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[-3]))
    if not versions:
        raise PostgresUnavailable("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    return Path(versions[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], timeout: float = 60) -> None:
    """Run a PostgreSQL tool; its failure becomes ``PostgresUnavailable`` naming the tool."""
    tool = next(Path(c).name for c in cmd if c.startswith("/") or c.endswith(("initdb", "pg_ctl", "createdb")))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise PostgresUnavailable(f"{tool} failed: {(p.stderr or p.stdout).strip()[-500:]}")


@contextlib.contextmanager
def postgres_server():
    """A running server on 127.0.0.1:<free port>; stopped (immediate) and removed afterwards."""
    bindir = _bindir()
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="compframe-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            raise PostgresUnavailable("running as root and there is no 'postgres' user to own the cluster") from None
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    started = False
    try:
        _run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
              "--no-sync", "--no-instructions"])
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off -c max_connections=200"
        _run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options,
              "-w", "-t", "60", "start"], timeout=90)
        started = True
        yield Postgres(port, bindir, as_user)
    finally:
        if started:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
