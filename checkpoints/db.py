"""SQLAlchemy engines for the registry (and any other small control-plane table).

One place decides how a database URL becomes an engine: SQLite files get WAL, a busy timeout
and ``BEGIN IMMEDIATE`` (writers queue on the lock instead of failing to upgrade), their parent
directory is created; PostgreSQL gets a connect timeout and a statement timeout, so a server
that accepts connections but never answers fails within seconds with a clear error instead of
hanging the caller. Tables are created on first use under an advisory lock on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class DatabaseError(RuntimeError):
    """A database URL that cannot be used, or a database that does not answer."""


def safe_url(url: str) -> str:
    """``url`` with its password hidden (for messages and logs)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def open_engine(
    url: str, what: str, connect_timeout_s: int = 10, statement_timeout_s: int = 30
) -> sa.Engine:
    """An engine for ``url`` (``sqlite`` or ``postgresql``); ``what`` names it in errors."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(f"{what} url {url!r} is not a SQLAlchemy URL: {exc}") from exc
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(f"{what} url {shown}: backend {backend!r} is not sqlite/postgresql")
    try:
        if backend == "sqlite":
            if parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": statement_timeout_s})
            _sqlite_hooks(engine, statement_timeout_s)
        else:
            options = f"-c statement_timeout={statement_timeout_s * 1000}"
            engine = sa.create_engine(
                parsed,
                pool_pre_ping=True,
                connect_args={"connect_timeout": connect_timeout_s, "options": options},
            )
    except (sa.exc.SQLAlchemyError, ImportError, OSError) as exc:
        raise DatabaseError(f"cannot open the {what} at {shown}: {exc}") from exc
    return engine


def _sqlite_hooks(engine: sa.Engine, busy_timeout_s: int) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN IMMEDIATE is emitted below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # control-plane rows: durable at commit
        cur.execute(f"PRAGMA busy_timeout={busy_timeout_s * 1000}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_tables(engine: sa.Engine, metadata: sa.MetaData, lock_key: int, what: str) -> None:
    """Create ``metadata``'s missing tables; concurrent first starts are serialised."""
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
            metadata.create_all(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot create the {what} tables at {safe_url(str(engine.url))}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
