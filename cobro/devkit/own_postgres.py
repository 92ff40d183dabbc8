"""A PostgreSQL cluster of our own, for tests that stop a database and for benchmarks that
need a server configured as for production: initdb'd in a temporary directory, run as a
non-root user (created if needed: PostgreSQL refuses to run as root), on a free loopback
port, trust auth. The machine's shared server is never touched."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

USER = "cobro-pgtest"

# what a production server of a few GB would be given (the Debian defaults are sized for a
# laptop: 128 MB of shared buffers, checkpoints every GB of WAL), with durability kept
PRODUCTION_LIKE = {
    "shared_buffers": "2GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "autovacuum": "on",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OwnPostgres:
    datadir: Path
    port: int
    user: str | None  # run as this OS user (None: as ourselves, when not root)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.server}/cobro"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}"
        options += "".join(f" -c {k}={v}" for k, v in self.settings.items())
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            str(self.datadir / "data"),
            "-o",
            options,
            "-l",
            str(self.datadir / "postgres.log"),
        )

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.datadir / "data"))


@contextmanager
def own_postgres(settings: dict[str, str] | None = None) -> Iterator[OwnPostgres]:
    """A running cluster with an empty database `cobro`; stopped and deleted afterwards.
    `settings`: server options (`-c name=value`), e.g. `PRODUCTION_LIKE` or `fsync=off`."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        raise RuntimeError("initdb/pg_ctl not found: the PostgreSQL server binaries are required")
    user = None
    if os.geteuid() == 0:
        user = USER
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                check=True,
            )
    base = Path(tempfile.mkdtemp(prefix="cobro-own-pg-"))
    if user:
        shutil.chown(base, user)
    cluster = OwnPostgres(base, free_port(), user, dict(settings or {}))
    try:
        cluster._run(
            "initdb",
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        cluster.start()
        try:
            with psycopg.connect(f"{cluster.server}/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE cobro")
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
