"""A real PostgreSQL server for the test session: Debian's binaries, a temp data dir, loopback.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is owned by the
``postgres`` system user (created by Debian's package) and started through ``runuser``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def _pg_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    run_as: str | None

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def start(self) -> None:
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.datadir), "-l", str(self.datadir / "server.log"), "-w", "-t", "60",
                      "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
                            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"),
            check=True, capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop"), capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://jeeves@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="jeeves", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: run the test suite through scripts/test.sh, which installs it")
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            pytest.fail("running as root needs the 'postgres' system user (Debian's postgresql package creates it)")
    base = Path(tempfile.mkdtemp(prefix="jeeves-pg-"))
    datadir = base / "data"
    datadir.mkdir()
    if run_as:
        os.chmod(base, 0o755)
        shutil.chown(datadir, run_as, run_as)
    server = PostgresServer(bindir, datadir, free_port(), run_as)
    subprocess.run(
        server._cmd("initdb", "-D", str(datadir), "-U", "jeeves", "--auth=trust", "-E", "UTF8", "--no-sync"),
        check=True, capture_output=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database URL on each dialect: every storage test runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jeeves.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{os.getpid()}_{next(_db_counter)}_{int(time.time() * 1000) % 100000}")


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh PostgreSQL database, for tests of PostgreSQL-only behaviour (SKIP LOCKED, advisory locks)."""
    return postgres_server.create_database(f"p{os.getpid()}_{next(_db_counter)}_{int(time.time() * 1000) % 100000}")
