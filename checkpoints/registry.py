"""The model version registry: a SQL table of versions plus immutable checkpoint files.

Writing a version (:meth:`Registry.save`) is staged: a ``staging`` row reserves the version
number, the checkpoint is written atomically (temp file, fsync, rename, directory fsync) to
``<dir>/<version>-<kind>.ckpt``, its whole-file sha256 is computed, and one transaction marks
the row ``ready`` with path, checksum, size, metrics and the event-time range it was trained
on. A writer killed at any point leaves a ``staging`` row (cleaned by :meth:`retain`) and
maybe a file nobody references; readers only ever see ``ready`` / ``published`` rows whose file
is complete. Publishing is in :mod:`checkpoints.publish`.

Several processes (workers, schedulers, servers) may share one registry database: version
numbers come from the database, every state change is one transaction.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from checkpoints.db import create_tables, open_engine
from checkpoints.schema import KINDS, STATUSES, metadata, publications_table, versions_table
from lt4rec.config import RegistryConfig

V = versions_table.c
P = publications_table.c
_DDL_LOCK = 0x4C54_5247  # advisory lock key for table creation on PostgreSQL
SERVABLE = ("ready", "published")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, wrong status...)."""


@dataclass(frozen=True)
class VersionInfo:
    """One registry row."""

    version: int
    parent: int | None
    kind: str
    status: str
    model_name: str
    created: float
    updated: float
    path: str | None
    sha256: str | None
    size: int | None
    data_first_ts: int | None
    data_last_ts: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def from_row(cls, row: Any) -> VersionInfo:
        m = row._mapping
        return cls(
            **{k: v for k, v in m.items() if k != "metrics"}, metrics=json.loads(m["metrics"])
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Publication:
    """One publish (or rollback) event; the newest one is the version in service."""

    id: int
    version: VersionInfo
    action: str
    published_at: float
    reason: str
    notified: bool


def sha256_file(path: Path) -> tuple[str, int]:
    """Hex sha256 and size of a file (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


class Registry:
    """Versions in ``cfg.url`` (tables created when missing), files under ``cfg.dir``."""

    def __init__(self, cfg: RegistryConfig) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.dir).resolve()
        self.engine = open_engine(cfg.url, "model registry")
        create_tables(self.engine, metadata, _DDL_LOCK, "model registry")

    def close(self) -> None:
        self.engine.dispose()

    # ---- writing versions -------------------------------------------------------------
    def save(
        self,
        kind: str,
        write: Callable[[Path], object],
        *,
        model_name: str,
        parent: int | None = None,
        metrics: dict[str, Any] | None = None,
        data_range: tuple[int | None, int | None] = (None, None),
    ) -> VersionInfo:
        """Stage a version, ``write(path)`` its checkpoint atomically, then mark it ready."""
        version = self._stage(kind, model_name, parent)
        path = self.dir / f"{version:08d}-{kind}.ckpt"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
            digest, size = sha256_file(path)
        except BaseException as exc:
            self.mark(version, "failed", f"writing the checkpoint failed: {exc!r}"[:500])
            raise
        values = {
            "status": "ready", "path": str(path), "sha256": digest, "size": size,
            "data_first_ts": data_range[0], "data_last_ts": data_range[1],
            "metrics": json.dumps(metrics or {}, sort_keys=True, default=float),
        }  # fmt: skip
        self._update(version, ("staging",), **values)
        return self.get(version)

    def record_failure(
        self,
        kind: str,
        reason: str,
        *,
        model_name: str,
        parent: int | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """A run that produced no servable version (failed, or its candidate discarded)."""
        version = self._stage(kind, model_name, parent)
        self._update(
            version, ("staging",), status="failed", reason=reason,
            metrics=json.dumps(metrics or {}, sort_keys=True, default=float),
        )  # fmt: skip
        return self.get(version)

    def mark(self, version: int, status: str, reason: str = "") -> VersionInfo:
        """Set ``status`` (e.g. ``rejected`` by a gate, ``corrupt`` by a reader) and why."""
        if status not in STATUSES:
            raise RegistryError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        self._update(version, None, status=status, reason=reason)
        return self.get(version)

    def _stage(self, kind: str, model_name: str, parent: int | None) -> int:
        if kind not in KINDS:
            raise RegistryError(f"unknown version kind {kind!r}; one of {', '.join(KINDS)}")
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.insert(versions_table).values(
                    parent=parent,
                    kind=kind,
                    status="staging",
                    model_name=model_name,
                    created=now,
                    updated=now,
                    metrics="{}",
                    reason="",
                )
            )
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def _update(self, version: int, only_from: Sequence[str] | None, **values: Any) -> None:
        with self.engine.begin() as conn:
            q = sa.update(versions_table).where(V.version == version)
            if only_from is not None:
                q = q.where(V.status.in_(only_from))
            if conn.execute(q.values(updated=time.time(), **values)).rowcount != 1:
                cur = conn.execute(sa.select(V.status).where(V.version == version)).scalar()
                if cur is None:
                    raise RegistryError(f"version {version} does not exist")
                raise RegistryError(
                    f"version {version} is {cur}, not {' or '.join(only_from or ())}"
                )

    # ---- reading ----------------------------------------------------------------------
    def get(self, version: int) -> VersionInfo:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(versions_table).where(V.version == version)).one_or_none()
        if row is None:
            raise RegistryError(f"version {version} does not exist")
        return VersionInfo.from_row(row)

    def versions(
        self,
        kinds: Iterable[str] | None = None,
        statuses: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[VersionInfo]:
        """Versions, newest first, optionally filtered by kind and status."""
        q = sa.select(versions_table).order_by(V.version.desc())
        if kinds is not None:
            q = q.where(V.kind.in_(list(kinds)))
        if statuses is not None:
            q = q.where(V.status.in_(list(statuses)))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [VersionInfo.from_row(r) for r in conn.execute(q)]

    def latest(
        self, kinds: Iterable[str] | None = None, statuses: Iterable[str] = SERVABLE
    ) -> VersionInfo | None:
        found = self.versions(kinds, statuses, limit=1)
        return found[0] if found else None

    # ---- publications -----------------------------------------------------------------
    def add_publication(self, version: int, action: str, reason: str) -> Publication:
        """Record that ``version`` (ready or published) is now in service, in one transaction."""
        with self.engine.begin() as conn:
            q = sa.update(versions_table).where(V.version == version, V.status.in_(SERVABLE))
            if conn.execute(q.values(status="published", updated=time.time())).rowcount != 1:
                cur = conn.execute(sa.select(V.status).where(V.version == version)).scalar()
                what = "does not exist" if cur is None else f"is {cur}"
                raise RegistryError(f"version {version} {what}: only ready versions are published")
            res = conn.execute(
                sa.insert(publications_table).values(
                    version=version,
                    action=action,
                    published_at=time.time(),
                    reason=reason,
                    notified=False,
                )
            )
            pk = res.inserted_primary_key
            assert pk is not None
            pub_id = int(pk[0])
        return self.publications(ids=[pub_id])[0]

    def publications(
        self,
        limit: int | None = None,
        ids: Sequence[int] | None = None,
        notified: bool | None = None,
    ) -> list[Publication]:
        """Publication events, newest first."""
        q = sa.select(publications_table).order_by(P.id.desc())
        if ids is not None:
            q = q.where(P.id.in_(list(ids)))
        if notified is not None:
            q = q.where(P.notified.is_(notified))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = list(conn.execute(q))
        return [
            Publication(r.id, self.get(r.version), r.action, r.published_at, r.reason, r.notified)
            for r in rows
        ]

    def current(self) -> Publication | None:
        """The publication in service (newest), or None before the first one."""
        pubs = self.publications(limit=1)
        return pubs[0] if pubs else None

    def mark_notified(self, pub_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(publications_table).where(P.id == pub_id).values(notified=True))

    # ---- retention --------------------------------------------------------------------
    def retain(self, keep_last: int | None = None) -> list[int]:
        """Delete the files of versions beyond the newest ``keep_last`` (published ones are
        always kept) and fail staging rows older than ``staging_timeout_s``. Returns the
        versions whose files were removed."""
        keep = self.cfg.keep_last if keep_last is None else keep_last
        cutoff = time.time() - self.cfg.staging_timeout_s
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(versions_table)
                .where(V.status == "staging", V.created < cutoff)
                .values(
                    status="failed", reason="writer died before committing", updated=time.time()
                )
            )
        with_file = ("ready", "published", "rejected", "corrupt")
        newest = {v.version for v in self.versions(statuses=with_file, limit=keep)}
        removed = []
        for v in self.versions(statuses=("ready", "rejected", "corrupt", "failed")):
            if v.version in newest or v.path is None:
                continue
            Path(v.path).unlink(missing_ok=True)
            self._update(v.version, (v.status,), status="deleted", path=None, reason=v.reason)
            removed.append(v.version)
        return removed
