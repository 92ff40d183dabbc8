"""Engine and session factory; migrations applied with alembic (`cobro db upgrade`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cobro.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, never psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str | None = None) -> Engine:
    url = normalise_url(url or get_settings().resolved_database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # prepare_threshold=None: no server-side prepared statements. psycopg prepares a query
    # after 5 runs and PostgreSQL then plans it once, generically, on the statistics of that
    # moment: a bulk sync's `cover_id IN (...1000 ids...)` planned while the table was
    # nearly empty became a linear scan of every id for every row (seconds per page at 100k)
    return create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})


def _create_private(path: Path) -> None:
    """A new SQLite file is created 0600 (customers' data: only its owner reads it; SQLite
    gives its -wal and -shm files the same mode); an existing one is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@lru_cache
def default_engine() -> Engine:
    return make_engine()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(engine or default_engine(), expire_on_commit=False)


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # imported when migrating, not by every process

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    url = url or get_settings().resolved_database_url
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _create_private(Path(parsed.database))  # before alembic's own engine creates it
    command.upgrade(alembic_config(url), revision)
