"""Fixtures shared by the whole suite.

Real services, never skipped: ``kafka_bootstrap`` is the Apache Kafka broker started by
``ops/kafka/kafka.sh start`` and ``db_url`` runs each storage test on SQLite *and* on the
PostgreSQL started by ``ops/postgres/postgres.sh start``. When a service is down the tests
fail with a message saying how to start it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

KAFKA_ENV = "LT4REC_TEST_KAFKA"
PG_ENV = "LT4REC_TEST_PG_URL"
DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_PG = "postgresql+psycopg://lt4rec:lt4rec@127.0.0.1:5432/lt4rec_test"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` of the real single-node KRaft broker."""
    bootstrap = os.environ.get(KAFKA_ENV, DEFAULT_KAFKA)
    host, port = bootstrap.rsplit(":", 1)
    if not _reachable(host, int(port)):
        pytest.fail(
            f"Apache Kafka is not reachable at {bootstrap}: run `ops/kafka/kafka.sh start` "
            f"(or set {KAFKA_ENV})",
            pytrace=False,
        )
    return bootstrap


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Factory of names unique to this test run (topics, consumer groups, databases)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    token = uuid.uuid4().hex[:8]

    def make(prefix: str = "t") -> str:
        return f"{prefix}.{base}.{token}.{uuid.uuid4().hex[:4]}"

    return make


def _pg_admin_url() -> str:
    return os.environ.get(PG_ENV, DEFAULT_PG)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the PostgreSQL test database (fails, never skips, when the server is down)."""
    url = _pg_admin_url()
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        pytest.fail(
            f"PostgreSQL is not reachable for {url}: run `ops/postgres/postgres.sh start` "
            f"(or set {PG_ENV})",
            pytrace=False,
        )
    return url


def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from fresh_pg_database(request.getfixturevalue("postgres_url"))
