"""Exclusion between schedulers: a renewed lease per job plus one row per (job, window end).

APScheduler 3.x job stores must never be shared between schedulers, so the exclusion lives in
the job itself, in the registry's database:

* ``scheduler_leases`` (job -> owner, until): a run first takes the job's lease (free, or
  expired: its owner died) and renews it every ``lease_s / 3`` while it works, so a second
  scheduler never runs the job at the same time, and a killed runner blocks it for at most
  ``lease_s``;
* ``scheduler_runs`` (job, window_end) unique: the idempotency key. A finished run (``done``
  or ``rejected``) is never repeated by a restarted scheduler; a ``failed`` or abandoned
  ``running`` one is retried.
* ``scheduler_requests``: early-run requests (the worker's drift alarm), consumed by the
  scheduler at most once per ``drift_min_interval_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from checkpoints.db import create_tables, open_engine

metadata = sa.MetaData()
leases = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)
runs = sa.Table(
    "scheduler_runs",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("window_end", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | done | rejected | failed
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("finished", sa.Float, nullable=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
)
requests = sa.Table(
    "scheduler_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("consumed", sa.Boolean, nullable=False),
)
L, R, Q = leases.c, runs.c, requests.c
JOB = "reprune"  # the re-pruning job's name in the ledger
FINISHED = ("done", "rejected")
_DDL_LOCK = 0x4C54_5343


@dataclass(frozen=True)
class RunRow:
    job: str
    window_end: int
    status: str
    owner: str
    started: float
    finished: float | None
    version: int | None
    reason: str


class RunLedger:
    """Leases, run rows and early-run requests in the registry database."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url, "scheduler ledger")
        create_tables(self.engine, metadata, _DDL_LOCK, "scheduler ledger")

    def close(self) -> None:
        self.engine.dispose()

    # ---- the lease ----------------------------------------------------------------------
    def acquire(self, job: str, owner: str, lease_s: float) -> bool:
        """Take ``job``'s lease if it is free, expired or already ours."""
        try:
            return self._acquire(job, owner, lease_s)
        except sa.exc.IntegrityError:  # another scheduler inserted the lease row first
            return False

    def _acquire(self, job: str, owner: str, lease_s: float) -> bool:
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(leases).where(L.job == job).with_for_update()).first()
            if row is None:
                conn.execute(sa.insert(leases).values(job=job, owner=owner, until=now + lease_s))
                return True
            if row.owner != owner and row.until > now:
                return False
            conn.execute(
                sa.update(leases).where(L.job == job).values(owner=owner, until=now + lease_s)
            )
            return True

    def renew(self, job: str, owner: str, lease_s: float) -> bool:
        """Extend our lease; False when another owner took it (ours had expired)."""
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.update(leases)
                .where(L.job == job, L.owner == owner)
                .values(until=time.time() + lease_s)
            )
            return res.rowcount == 1

    def release(self, job: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(leases).where(L.job == job, L.owner == owner))

    # ---- run rows -----------------------------------------------------------------------
    def start(self, job: str, window_end: int, owner: str) -> bool:
        """Record a run of (job, window_end); False when that run finished (or another
        scheduler recorded it at the same instant)."""
        try:
            return self._start(job, window_end, owner)
        except sa.exc.IntegrityError:
            return False

    def _start(self, job: str, window_end: int, owner: str) -> bool:
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(runs).where(R.job == job, R.window_end == window_end).with_for_update()
            ).first()
            if row is not None and row.status in FINISHED:
                return False
            values = {"status": "running", "owner": owner, "started": now, "finished": None,
                      "version": None, "reason": ""}  # fmt: skip
            if row is None:
                conn.execute(sa.insert(runs).values(job=job, window_end=window_end, **values))
            else:  # failed, or a dead runner's: retried
                conn.execute(
                    sa.update(runs).where(R.job == job, R.window_end == window_end).values(**values)
                )
            return True

    def finish(
        self, job: str, window_end: int, status: str, version: int | None, reason: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(R.job == job, R.window_end == window_end)
                .values(status=status, finished=time.time(), version=version, reason=reason)
            )

    def runs(self, job: str | None = None) -> list[RunRow]:
        q = sa.select(runs).order_by(R.started)
        if job is not None:
            q = q.where(R.job == job)
        with self.engine.connect() as conn:
            return [RunRow(**r._mapping) for r in conn.execute(q)]

    # ---- early-run requests ---------------------------------------------------------------
    def request(self, job: str, reason: str) -> None:
        """Ask the scheduler for an early run of ``job`` (e.g. the worker's drift alarm)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(requests).values(
                    job=job, requested_at=time.time(), reason=reason, consumed=False
                )
            )

    def take_requests(self, job: str) -> list[str]:
        """Reasons of the pending requests for ``job``, marked consumed."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(Q.id, Q.reason).where(Q.job == job, Q.consumed.is_(False))
            ).all()
            if rows:
                ids = [r.id for r in rows]
                conn.execute(sa.update(requests).where(Q.id.in_(ids)).values(consumed=True))
            return [r.reason for r in rows]
