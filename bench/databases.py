"""Fresh, migrated databases for the benches: a PostgreSQL database created on the local
server (or on another one: `server`) and dropped afterwards, or a SQLite file in a given
directory."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cobro.db import upgrade

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def pg_database(server: str = PG_SERVER) -> Iterator[str]:
    name = f"cobro_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"{server}/{name}"
            upgrade(url)
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / f'bench_{uuid.uuid4().hex[:8]}.db'}"
    upgrade(url)
    yield url
