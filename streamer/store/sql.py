"""SQLAlchemy :class:`StateStore` (SQLite default, PostgreSQL via psycopg 3).

Each transaction starts by locking the partition's meta row and checking its epoch, so a
superseded owner fails with :class:`Fenced` before writing anything, and everything a
``process()`` call produced (entries, outbox, offsets) commits together or not at all.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit survives a crash of the process
(kill -9) — the transaction boundary holds — but the last commits may be lost on power loss.
Transactions asked to be ``durable`` (archive seals, whose chunk names must never change once a
file may exist) switch to ``synchronous=FULL`` for their commit. ``BEGIN IMMEDIATE`` takes the
write lock up front so concurrent processes queue (busy timeout) instead of failing to upgrade.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from streamer.store.base import Fenced, Meta, StateStore, StoreError, StoreTxn
from streamer.store.schema import meta_table, metadata
from streamer.store.sql_txn import SqlTxn

_DDL_LOCK = 0x4C54_3452  # PostgreSQL advisory lock key held while creating the tables
M = meta_table.c
_PERMANENT = ("readonly", "read-only", "read only", "no such table", "permission denied",
              "does not exist", "authentication failed")  # fmt: skip


def db_error(exc: BaseException) -> str:
    """One line naming a database error's real cause: the driver's message, without the
    SQL statement and parameters SQLAlchemy appends (kilobytes for a bulk insert)."""
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if isinstance(exc, sa.exc.StatementError) and text.startswith("("):
        text = text.split(") ", 1)[-1]  # "(sqlite3.OperationalError) x" -> "x"
    return f"{type(cause).__name__}: {text[:300]}"


def _raw(conn: Connection) -> Any:
    """The DBAPI connection (statements on it bypass SQLAlchemy's autobegin)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


def _install_sqlite_hooks(engine: sa.Engine, busy_ms: int) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN IMMEDIATE ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA wal_autocheckpoint=8192")  # fewer checkpoint fsyncs (32 MiB WAL)
        cur.execute("PRAGMA cache_size=-16384")  # 16 MiB page cache: random-id B-tree pages
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore(StateStore):
    """State in a SQL database; the tables are created when missing.

    ``connect_timeout_s`` bounds a PostgreSQL connection attempt (an endpoint that accepts
    TCP but never answers fails instead of hanging); ``statement_timeout_s`` is PostgreSQL's
    ``statement_timeout`` and SQLite's busy timeout. TCP keepalives and ``tcp_user_timeout``
    detect a PostgreSQL host that went away mid-statement. Pooled connections are pinged
    before use, so a restarted server costs one retried transaction, not a failure.
    """

    def __init__(
        self, url: str, connect_timeout_s: float = 10.0, statement_timeout_s: float = 60.0
    ) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"store url {url!r} is not a SQLAlchemy URL: {exc}") from exc
        self.url = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"store url {self.url}: backend {backend!r} is not sqlite/postgresql")
        self._sqlite = backend == "sqlite"
        if self._sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
        self._insert = dialect_insert
        if self._sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout_ms = int(statement_timeout_s * 1000)
        args: dict[str, Any] = {}
        if not self._sqlite:
            args = {"connect_timeout": max(1, math.ceil(connect_timeout_s)), "keepalives": 1,
                    "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                    "tcp_user_timeout": int(connect_timeout_s * 1000) + timeout_ms}  # fmt: skip
            if "options" not in parsed.query:
                args["options"] = f"-c statement_timeout={timeout_ms}"
        try:
            self.engine = sa.create_engine(
                parsed, future=True, pool_pre_ping=True, connect_args=args
            )
            if self._sqlite:
                _install_sqlite_hooks(self.engine, timeout_ms)
            with self.engine.begin() as conn:  # serialise concurrent first starts
                if not self._sqlite:  # (SQLite: BEGIN IMMEDIATE already does)
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DDL_LOCK})
                metadata.create_all(conn)
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open the state store {self.url}: {db_error(exc)}") from exc

    def claim(self, partition: int, owner: str) -> Meta:
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(meta_table)
                .values(partition=partition, epoch=0, owner="", data="{}")
                .on_conflict_do_nothing(index_elements=[M.partition])
            )
            conn.execute(
                sa.update(meta_table)
                .where(M.partition == partition)
                .values(epoch=M.epoch + 1, owner=owner)
            )
            row = conn.execute(sa.select(meta_table).where(M.partition == partition)).one()
            return Meta(partition, int(row.epoch), row.owner, json.loads(row.data))

    @contextmanager
    def transaction(self, partition: int, epoch: int, durable: bool = False) -> Iterator[StoreTxn]:
        with self.engine.connect() as conn:
            if durable and self._sqlite:  # raw DBAPI: no SQLAlchemy autobegin
                _raw(conn).execute("PRAGMA synchronous=FULL")
            try:
                with conn.begin():
                    row = conn.execute(
                        sa.select(M.epoch, M.owner, M.data)
                        .where(M.partition == partition)
                        .with_for_update()
                    ).one_or_none()
                    current = None if row is None else int(row.epoch)
                    if current != epoch:
                        owner = None if row is None else row.owner
                        raise Fenced(
                            f"partition {partition}: epoch {epoch} superseded by {current} "
                            f"(owner {owner!r})"
                        )
                    assert row is not None
                    meta = Meta(partition, epoch, row.owner, json.loads(row.data))
                    yield SqlTxn(conn, partition, not self._sqlite, meta)
            finally:
                if durable and self._sqlite:
                    _raw(conn).execute("PRAGMA synchronous=NORMAL")

    def partitions(self) -> list[int]:
        with self.engine.connect() as conn:
            return sorted(int(r[0]) for r in conn.execute(sa.select(M.partition)))

    def close(self) -> None:
        self.engine.dispose()

    def describe(self, exc: BaseException) -> str | None:
        return db_error(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else None

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        kinds = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
        if not isinstance(exc, kinds):
            return False
        return not any(word in db_error(exc).lower() for word in _PERMANENT)
